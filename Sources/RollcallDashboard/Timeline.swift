import RollcallCore

/// The 24 h timeline bar of the detail view: one state per column.
public enum Timeline {
    /// Splits `start..<end` into `width` slots and gives each the worst state the agent was in during
    /// it (offline, then suspect, unknown, online), so a short outage stays visible at any width;
    /// `nil` before the first transition known. `initial` is the state before the first transition.
    public static func slots(_ transitions: [Transition], initial: PresenceState?, start: Millis, end: Millis, width: Int) -> [PresenceState?] {
        guard width > 0, end > start else { return [] }
        var slots = [PresenceState?](repeating: nil, count: width)
        let span = Double(end - start)
        func slot(_ t: Millis) -> Int { min(width - 1, max(0, Int(Double(t - start) / span * Double(width)))) }
        func mark(_ state: PresenceState?, from a: Millis, to b: Millis) {
            guard let state, b > start, a < end else { return }
            let first = slot(max(a, start))
            let last = b >= end ? width - 1 : slot(b - 1)
            guard first <= last else { return }
            for i in first...last where worse(state, than: slots[i]) { slots[i] = state }
        }
        var state = initial
        var since = start
        for t in transitions.sorted(by: { $0.id < $1.id }) {
            mark(state, from: since, to: max(since, t.effectiveAt))
            state = t.to
            since = t.effectiveAt
        }
        mark(state, from: since, to: end)
        return slots
    }

    static func worse(_ a: PresenceState, than b: PresenceState?) -> Bool {
        guard let b else { return true }
        return DashboardState.severity(a) < DashboardState.severity(b)
    }

    /// The glyph for a slot: a full block coloured by state, or distinct shades without colour.
    public static func glyph(_ state: PresenceState?, colour: Bool) -> Unicode.Scalar {
        guard let state else { return " " }
        if colour { return "█" }
        switch state {
        case .online: return "█"
        case .suspect: return "▒"
        case .offline: return "_"
        case .unknown: return "?"
        }
    }
}
