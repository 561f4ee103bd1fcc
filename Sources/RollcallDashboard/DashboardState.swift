import RollcallCore

/// The columns of the agents table, in display order.
public enum Column: Int, CaseIterable, Sendable {
    case id, state, since, lastSeen, rtt, flaps, uptime

    public var title: String {
        switch self {
        case .id: "ID"
        case .state: "STATE"
        case .since: "SINCE"
        case .lastSeen: "LAST SEEN"
        case .rtt: "RTT"
        case .flaps: "FLAPS"
        case .uptime: "UP 24H"
        }
    }
}

/// How the watch stream is doing, for the header.
public enum ConnectionStatus: Equatable, Sendable {
    case connecting
    case live
    /// Lost; retrying. `error` says why, shortly.
    case reconnecting(attempt: Int, error: String)
}

/// One agent's detail view, loaded from the API when it opens.
public struct AgentDetail: Equatable, Sendable {
    public struct Session: Equatable, Sendable {
        public var id: Int64
        public var startedAt: Millis
        public var endedAt: Millis?
        public var endReason: String?
        public var remoteAddress: String?
        public var heartbeats: Int64

        public init(id: Int64, startedAt: Millis, endedAt: Millis?, endReason: String?, remoteAddress: String?, heartbeats: Int64) {
            self.id = id
            self.startedAt = startedAt
            self.endedAt = endedAt
            self.endReason = endReason
            self.remoteAddress = remoteAddress
            self.heartbeats = heartbeats
        }
    }

    public var id: String
    public var labels: [(String, String)] = []
    public var hostname: String?
    public var agentVersion: String?
    public var intervalMs: Int64?
    public var timeoutMs: Int64?
    public var offlineAt: Millis?
    /// Transitions effective in the last 24 h, oldest first.
    public var transitions: [Transition] = []
    /// Newest first.
    public var sessions: [Session] = []
    /// The window the transitions cover, for the timeline.
    public var windowStart: Millis = 0
    public var loadedAt: Millis = 0
    public var error: String?

    public init(id: String) { self.id = id }

    public static func == (a: AgentDetail, b: AgentDetail) -> Bool {
        a.id == b.id && a.labels.map { "\($0)=\($1)" } == b.labels.map { "\($0)=\($1)" } && a.hostname == b.hostname
            && a.agentVersion == b.agentVersion && a.intervalMs == b.intervalMs && a.timeoutMs == b.timeoutMs && a.offlineAt == b.offlineAt
            && a.transitions == b.transitions && a.sessions == b.sessions && a.windowStart == b.windowStart && a.loadedAt == b.loadedAt
            && a.error == b.error
    }
}

/// What the surrounding program must do after a key.
public enum DashboardAction: Equatable, Sendable {
    case quit
    case openDetail(String)
}

/// Everything the dashboard shows, and the rules for moving through it. A value owned by the one
/// task that runs the dashboard; keys and stream events change it, the renderer reads it.
public struct DashboardState: Sendable {
    public var fleet = Fleet()
    public var server: String
    public var connection: ConnectionStatus = .connecting
    public var heartbeatsPerSecond: Double?
    public var sortColumn: Column = .state
    public var descending = false
    public var filter = ""
    public var editingFilter = false
    /// The agent under the cursor; kept by id so it stays put while rows move.
    public private(set) var selectedID: String?
    /// Position of the selection in `order`.
    public private(set) var selected = 0
    /// Until the operator moves, the selection stays on the first row instead of following an agent.
    private var followsAgent = false
    /// First row of `order` on screen.
    public private(set) var top = 0
    public var detail: AgentDetail?
    public var showHelp = false
    /// The lines the table has room for; set by the renderer's layout for the current size.
    public var pageSize = 20

    /// Indices into `fleet.rows`, filtered and sorted.
    public private(set) var order: [Int] = []
    private var orderKey: OrderKey?
    private var orderedAt: Millis = .min

    private struct OrderKey: Equatable {
        var version: Int
        var column: Column
        var descending: Bool
        var filter: String
    }

    public init(server: String) { self.server = server }

    // MARK: Ordering

    /// Rebuilds `order` when the fleet, the sort or the filter changed. A fleet that changes every
    /// few milliseconds is re-sorted at most every `minimumInterval` ms (rows update in place
    /// meanwhile); a new sort or filter applies at once.
    public mutating func refreshOrder(now: Millis, minimumInterval: Millis = 250) {
        let key = OrderKey(version: fleet.version, column: sortColumn, descending: descending, filter: filter)
        guard key != orderKey else { return }
        if let old = orderKey, old.column == key.column, old.descending == key.descending, old.filter == key.filter,
            now - orderedAt < minimumInterval
        {
            return
        }
        orderKey = key
        orderedAt = now
        order = Self.sortedIndices(fleet.rows, column: sortColumn, descending: descending, filter: filter)
        if followsAgent, let id = selectedID, let position = order.firstIndex(where: { fleet.rows[$0].id == id }) {
            selected = position
        } else {
            selected = min(selected, max(0, order.count - 1))
            selectedID = order.isEmpty ? nil : fleet.rows[order[selected]].id
        }
        scrollToSelection()
    }

    /// Problems first: offline, suspect, unknown, then online.
    static func severity(_ s: PresenceState) -> Int {
        switch s {
        case .offline: 0
        case .suspect: 1
        case .unknown: 2
        case .online: 3
        }
    }

    static func sortedIndices(_ rows: [AgentRow], column: Column, descending: Bool, filter: String) -> [Int] {
        var indices = Array(rows.indices)
        let needle = filter.lowercased()
        if !needle.isEmpty {
            // A prefix of a state's name matches that state (`off`, `susp`), as a part of an
            // id matches the id.
            let states = Set(PresenceState.allCases.filter { $0.rawValue.hasPrefix(needle) })
            indices.removeAll { i in
                let r = rows[i]
                return !states.contains(r.state) && !r.id.lowercased().contains(needle)
            }
        }
        // Ties go by id, so equal keys keep a stable, readable order.
        func ordered(_ a: AgentRow, _ b: AgentRow) -> Bool {
            switch column {
            case .id: return a.id < b.id
            case .state:
                let (x, y) = (severity(a.state), severity(b.state))
                return x != y ? x < y : a.since != b.since ? a.since > b.since : a.id < b.id
            case .since: return a.since != b.since ? a.since > b.since : a.id < b.id
            case .lastSeen: return (a.lastSeen ?? .min) != (b.lastSeen ?? .min) ? (a.lastSeen ?? .min) < (b.lastSeen ?? .min) : a.id < b.id
            case .rtt: return (a.rttMs ?? -1) != (b.rttMs ?? -1) ? (a.rttMs ?? -1) > (b.rttMs ?? -1) : a.id < b.id
            case .flaps: return (a.flaps ?? -1) != (b.flaps ?? -1) ? (a.flaps ?? -1) > (b.flaps ?? -1) : a.id < b.id
            case .uptime: return (a.uptime ?? 2) != (b.uptime ?? 2) ? (a.uptime ?? 2) < (b.uptime ?? 2) : a.id < b.id
            }
        }
        rows.withUnsafeBufferPointer { rows in
            indices.sort { descending ? ordered(rows[$1], rows[$0]) : ordered(rows[$0], rows[$1]) }
        }
        return indices
    }

    // MARK: Moving

    public var selectedRow: AgentRow? { selectedID.flatMap { fleet.row($0) } }

    public mutating func select(position: Int) {
        guard !order.isEmpty else {
            selected = 0
            selectedID = nil
            return
        }
        followsAgent = true
        selected = min(max(0, position), order.count - 1)
        selectedID = fleet.rows[order[selected]].id
        scrollToSelection()
    }

    mutating func scrollToSelection() {
        let page = max(1, pageSize)
        if selected < top { top = selected }
        if selected >= top + page { top = selected - page + 1 }
        top = max(0, min(top, max(0, order.count - page)))
    }

    // MARK: Keys

    /// Applies one key; returns what the program must do beyond redrawing, if anything.
    public mutating func handle(_ key: Key, now: Millis) -> DashboardAction? {
        if key == .control("c") { return .quit }
        if showHelp {
            showHelp = false  // any key closes the help
            return key == .character("q") ? .quit : nil
        }
        if editingFilter { return editFilter(key, now: now) }
        if detail != nil {
            switch key {
            case .escape, .backspace, .left, .enter, .character("h"): detail = nil
            case .character("q"): return .quit
            case .character("?"): showHelp = true
            default: break
            }
            return nil
        }
        switch key {
        case .character("q"): return .quit
        case .character("?"): showHelp = true
        case .up, .character("k"): select(position: selected - 1)
        case .down, .character("j"): select(position: selected + 1)
        case .pageUp, .control("b"): select(position: selected - max(1, pageSize - 1))
        case .pageDown, .control("f"), .character(" "): select(position: selected + max(1, pageSize - 1))
        case .home, .character("g"): select(position: 0)
        case .end, .character("G"): select(position: order.count - 1)
        case .character("/"): editingFilter = true
        case .escape:
            if !filter.isEmpty {
                filter = ""
                refreshOrder(now: now)
            }
        case .character("s"), .tab, .right:
            sortColumn = Column(rawValue: (sortColumn.rawValue + 1) % Column.allCases.count)!
            descending = false
            refreshOrder(now: now)
        case .left:
            sortColumn = Column(rawValue: (sortColumn.rawValue + Column.allCases.count - 1) % Column.allCases.count)!
            descending = false
            refreshOrder(now: now)
        case .character("r"):
            descending.toggle()
            refreshOrder(now: now)
        case .character(let c) where c.isNumber:
            if let n = c.wholeNumberValue, n >= 1, let column = Column(rawValue: n - 1) {
                if column == sortColumn { descending.toggle() } else { (sortColumn, descending) = (column, false) }
                refreshOrder(now: now)
            }
        case .enter:
            if let id = selectedID {
                detail = AgentDetail(id: id)
                return .openDetail(id)
            }
        default: break
        }
        return nil
    }

    private mutating func editFilter(_ key: Key, now: Millis) -> DashboardAction? {
        switch key {
        case .enter: editingFilter = false
        case .escape:
            editingFilter = false
            filter = ""
        case .backspace:
            if !filter.isEmpty { filter.removeLast() }
        case .control("u"): filter = ""
        case .character(let c) where filter.count < 64: filter.append(c)
        case .up, .down, .pageUp, .pageDown:
            editingFilter = false
            return handle(key, now: now)
        default: break
        }
        selected = 0
        refreshOrder(now: now)
        return nil
    }
}
