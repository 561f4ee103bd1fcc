import RollcallCore

/// Draws a ``DashboardState`` into a ``Frame``: a pure function of the state, the size, the time
/// and the theme. Only the rows on screen are formatted, whatever the size of the fleet.
public struct Renderer: Sendable {
    public var theme: Theme

    public init(theme: Theme) { self.theme = theme }

    /// Smallest size the dashboard draws into; below it, a one-line notice.
    public static let minimumSize = ScreenSize(rows: 6, columns: 24)

    /// Lines the table gets at `size`: everything but the title, counts, heading and footer.
    public static func tableRows(for size: ScreenSize) -> Int { max(1, size.rows - 4) }

    public func render(_ state: DashboardState, size: ScreenSize, now: Millis) -> Frame {
        var frame = Frame(size: size)
        guard size.rows >= Self.minimumSize.rows, size.columns >= Self.minimumSize.columns else {
            frame.put("terminal too small", row: 0, column: 0)
            return frame
        }
        titleBar(&frame, state, now: now)
        if let detail = state.detail {
            detailView(&frame, state, detail, now: now)
        } else {
            countsLine(&frame, state)
            table(&frame, state, now: now)
            footer(&frame, state)
        }
        if state.showHelp { help(&frame) }
        return frame
    }

    // MARK: Header

    func titleBar(_ f: inout Frame, _ state: DashboardState, now: Millis) {
        f.fill(" ", row: 0, column: 0, width: f.size.columns, style: theme.bar)
        var c = f.put(" Rollcall ", row: 0, column: 0, style: theme.bar)
        c = f.put(" " + state.server + "  ", row: 0, column: c, style: theme.bar)
        let (text, style): (String, Style)
        switch state.connection {
        case .connecting: (text, style) = ("○ connecting…", theme.bar)
        case .live: (text, style) = ("● live", theme.bar)
        case .reconnecting(let attempt, let error):
            (text, style) = ("◌ reconnecting (attempt \(attempt)): \(error)", Style(foreground: theme.state(.suspect).foreground, background: theme.bar.background, bold: true, reverse: theme.mode == .none))
        }
        let clock = Format.clock(now) + " UTC "
        c = f.put(text, row: 0, column: c, width: max(0, f.size.columns - c - clock.count - 1), style: style)
        if f.size.columns - clock.count > c { f.put(clock, row: 0, column: f.size.columns - clock.count, style: theme.bar) }
    }

    func countsLine(_ f: inout Frame, _ state: DashboardState) {
        let fleet = state.fleet
        // The watch cursor: the last transition applied, the id a reconnect resumes after.
        let cursor = "event #\(fleet.cursor) "
        let states: [PresenceState] = [.online, .suspect, .offline, .unknown]
        // The widest form that fits beside the cursor; a narrow terminal gets a shorter line,
        // never a cut one: wide gaps, then tight gaps and "/s", then counts without names.
        struct Form { var gap: String; var names: [PresenceState: String]; var rate: String }
        let full = Dictionary(uniqueKeysWithValues: states.map { ($0, " " + $0.rawValue) })
        let short: [PresenceState: String] = [.online: " on", .suspect: " susp", .offline: " off", .unknown: " unk"]
        let forms = [
            Form(gap: "   ", names: full, rate: " beats/s"), Form(gap: "  ", names: full, rate: "/s"), Form(gap: " ", names: short, rate: "/s"),
            Form(gap: " ", names: [:], rate: "/s"),
        ]
        let total = " \(fleet.count) agent\(fleet.count == 1 ? "" : "s")"
        let rate = state.heartbeatsPerSecond.map { Format.fixed($0, 1) }
        func length(_ form: Form) -> Int {
            var n = total.count
            for s in states { n += form.gap.count + 1 + " \(fleet.counts[s] ?? 0)".count + (form.names[s]?.count ?? 0) }
            if let rate { n += form.gap.count + rate.count + form.rate.count }
            return n
        }
        let form = forms.first { length($0) + 2 + cursor.count <= f.size.columns } ?? forms[forms.count - 1]
        var c = f.put(total, row: 1, column: 0, style: theme.heading)
        for s in states {
            c = f.put(form.gap, row: 1, column: c)
            c = f.put("●", row: 1, column: c, style: theme.state(s))
            c = f.put(" \(fleet.counts[s] ?? 0)" + (form.names[s] ?? ""), row: 1, column: c)
        }
        if let rate {
            c = f.put(form.gap, row: 1, column: c)
            c = f.put(rate + form.rate, row: 1, column: c, style: theme.muted)
        }
        if f.size.columns - cursor.count >= c + 2 { f.put(cursor, row: 1, column: f.size.columns - cursor.count, style: theme.muted) }
    }

    // MARK: Table

    /// Which columns fit in `width`, and how wide the id column is. The id and state always show;
    /// the others go in the order flaps, RTT, last seen, uptime, since as the terminal narrows.
    public static func layout(width: Int, longestID: Int) -> (columns: [Column], idWidth: Int) {
        let fixed: [Column: Int] = [.state: 7, .since: 6, .lastSeen: 10, .rtt: 8, .flaps: 6, .uptime: 7]
        var columns = Column.allCases
        let wanted = min(40, max(8, longestID))
        func used(_ columns: [Column], id: Int) -> Int {
            1 + id + columns.filter { $0 != .id }.reduce(0) { $0 + fixed[$1]! + 2 }
        }
        for drop in [Column.flaps, .rtt, .lastSeen, .uptime, .since] where used(columns, id: min(wanted, 12)) > width {
            columns.removeAll { $0 == drop }
        }
        let idWidth = max(1, min(wanted, width - used(columns, id: 0)))
        return (columns, idWidth)
    }

    static func width(_ column: Column, idWidth: Int) -> Int {
        switch column {
        case .id: idWidth
        case .state: 7
        case .since: 6
        // One wider than their titles, so the sort arrow fits beside them.
        case .lastSeen: 10
        case .rtt: 8
        case .flaps: 6
        case .uptime: 7
        }
    }

    static func rightAligned(_ column: Column) -> Bool { column != .id && column != .state }

    func table(_ f: inout Frame, _ state: DashboardState, now: Millis) {
        let (columns, idWidth) = Self.layout(width: f.size.columns, longestID: state.fleet.longestID)
        // Heading, with the sort column marked.
        let headRow = 2
        f.fill(" ", row: headRow, column: 0, width: f.size.columns, style: theme.heading)
        var c = 1
        for column in columns {
            let w = Self.width(column, idWidth: idWidth)
            var title = column.title
            if column == state.sortColumn { title += state.descending ? "▲" : "▼" }
            let text = Self.align(title, w, right: Self.rightAligned(column))
            f.put(text, row: headRow, column: c, width: w, style: column == state.sortColumn ? Style(bold: true, reverse: theme.mode == .none) : theme.heading)
            c += w + 2
        }
        let first = 3
        let rows = Self.tableRows(for: f.size)
        if state.order.isEmpty {
            let message = state.fleet.count == 0
                ? (state.connection == .live ? "No agents yet. Start one: rollcall-agent --server ws://HOST:7777 --id NAME" : "Waiting for the server…")
                : "No agent matches “\(state.filter)”. Esc clears the filter."
            f.put(message, row: first + min(2, rows - 1), column: 2, width: f.size.columns - 3, style: theme.muted)
            return
        }
        let end = min(state.order.count, state.top + rows)
        for (line, position) in (state.top..<end).enumerated() {
            let row = state.fleet.rows[state.order[position]]
            let r = first + line
            var c = 1
            for column in columns {
                let w = Self.width(column, idWidth: idWidth)
                let text = Self.cellText(column, row, width: w, now: now)
                let style = column == .state ? theme.state(row.state) : (column == .id ? .plain : theme.muted)
                f.put(Self.align(text, w, right: Self.rightAligned(column)), row: r, column: c, width: w, style: style)
                c += w + 2
            }
            if position == state.selected {
                let selected = theme.selected
                f.restyle(row: r) { s in
                    if theme.mode == .none { s.reverse = true } else {
                        s.background = selected.background
                        if s.foreground == theme.muted.foreground || s.foreground == .default { s.foreground = selected.foreground }
                    }
                }
            }
        }
    }

    static func cellText(_ column: Column, _ row: AgentRow, width: Int, now: Millis) -> String {
        switch column {
        case .id: return truncate(row.id, width)
        case .state: return row.state.rawValue
        case .since: return Format.age(now - row.since)
        case .lastSeen: return row.lastSeen.map { Format.recent(now - $0) } ?? "–"
        case .rtt: return Format.rtt(row.rttMs)
        case .flaps: return row.flaps.map(String.init) ?? "–"
        case .uptime: return Format.percent(row.uptime)
        }
    }

    /// Cuts `text` to `width` columns as ``Frame/put(_:row:column:width:style:)`` draws it,
    /// marking the cut with `…`.
    public static func truncate(_ text: String, _ width: Int) -> String {
        guard Frame.columns(of: text) > width else { return text }
        guard width > 1 else { return String(text.prefix(width)) }
        // Cut between scalars, never inside an escape, so what is left still reads as the text.
        let scalars = text.unicodeScalars
        var end = scalars.startIndex
        var used = 0
        for scalar in scalars {
            used += TerminalText.escape(scalar)?.unicodeScalars.count ?? 1
            guard used < width else { break }
            end = scalars.index(after: end)
        }
        return String(scalars[..<end]) + "…"
    }

    /// Pads `text` to `width` columns as ``Frame/put(_:row:column:width:style:)`` draws it.
    static func align(_ text: String, _ width: Int, right: Bool) -> String {
        let n = Frame.columns(of: text)
        guard n < width else { return text }
        let pad = String(repeating: " ", count: width - n)
        return right ? pad + text : text + pad
    }

    func footer(_ f: inout Frame, _ state: DashboardState) {
        let r = f.size.rows - 1
        f.fill(" ", row: r, column: 0, width: f.size.columns, style: theme.bar)
        let position = state.order.isEmpty ? "0/0" : "\(state.selected + 1)/\(state.order.count)"
        if state.editingFilter {
            let c = f.put(" filter: ", row: r, column: 0, style: theme.bar)
            let end = f.put(state.filter, row: r, column: c, style: theme.bar)
            f.put("█", row: r, column: end, style: theme.bar)
            f.put("  Enter keeps · Esc clears", row: r, column: end + 1, style: theme.bar)
            return
        }
        var left = " " + position
        if !state.filter.isEmpty { left += "  filter “\(state.filter)”" }
        let keys = "  ↑↓ move  Enter detail  / filter  s sort  r reverse  ? help  q quit"
        let c = f.put(left, row: r, column: 0, style: theme.bar)
        f.put(keys, row: r, column: c, style: theme.bar)
    }

    // MARK: Detail

    func detailView(_ f: inout Frame, _ state: DashboardState, _ d: AgentDetail, now: Millis) {
        let width = f.size.columns
        let row = state.fleet.row(d.id)
        var c = f.put(" ◂ ", row: 1, column: 0, style: theme.muted)
        c = f.put(d.id, row: 1, column: c, width: min(width - c, 60), style: theme.heading)
        if let row {
            c = f.put("  ", row: 1, column: c)
            c = f.put(row.state.rawValue, row: 1, column: c, style: theme.state(row.state))
            c = f.put(" since \(Format.dateTime(row.since)) (\(Format.age(now - row.since)))", row: 1, column: c)
        }
        var facts: [String] = []
        if let i = d.intervalMs, let t = d.timeoutMs { facts.append("interval \(Format.fixed(Double(i) / 1000, 1))s, timeout \(Format.fixed(Double(t) / 1000, 1))s") }
        if let rtt = row?.rttMs { facts.append("rtt \(Format.rtt(rtt))") }
        if let up = row?.uptime { facts.append("24h uptime \(Format.percent(up))") }
        if let flaps = row?.flaps { facts.append("\(flaps) flap\(flaps == 1 ? "" : "s")") }
        if let at = d.offlineAt { facts.append("offline at \(Format.clock(at)) unless it beats") }
        f.put(" " + facts.joined(separator: " · "), row: 2, column: 0, width: width, style: theme.muted)
        var about: [String] = []
        if let h = d.hostname { about.append("host \(h)") }
        if let v = d.agentVersion { about.append("agent \(v)") }
        if !d.labels.isEmpty { about.append(d.labels.map { "\($0)=\($1)" }.joined(separator: " ")) }
        if let e = d.error { about = ["could not load: \(e)"] }
        f.put(" " + about.joined(separator: " · "), row: 3, column: 0, width: width, style: d.error == nil ? .plain : theme.state(.suspect))

        // Timeline: a box three rows high.
        var top = 4
        box(&f, title: "last 24 h", row: top, height: 4)
        let barWidth = max(1, width - 4)
        let start = now - 86_400_000
        let initial = d.transitions.first?.from ?? (d.transitions.isEmpty ? row?.state : nil)
        let slots = Timeline.slots(d.transitions, initial: initial, start: start, end: now, width: barWidth)
        for (i, s) in slots.enumerated() {
            let style = s.map { theme.mode == .none ? .plain : theme.state($0) } ?? theme.muted
            f[top + 1, 2 + i] = Cell(Timeline.glyph(s, colour: theme.mode != .none), style)
        }
        // Hour marks under the bar: -24h … now.
        for (k, label) in ["-24h", "-18h", "-12h", "-6h", "now"].enumerated() {
            let at = 2 + (barWidth - 1) * k / 4
            let col = k == 4 ? max(2, 2 + barWidth - label.count) : k == 0 ? 2 : at - label.count / 2
            f.put(label, row: top + 2, column: col, style: theme.muted)
        }
        top += 4

        // The rest of the height: transitions (newest first), then sessions.
        let remaining = f.size.rows - 1 - top
        let transitionsHeight = max(3, remaining / 2 + (remaining % 2))
        let sessionsHeight = remaining - transitionsHeight
        box(&f, title: "transitions, newest first", row: top, height: transitionsHeight)
        let recent = d.transitions.reversed()
        if recent.isEmpty {
            f.put("none in the last 24 h", row: top + 1, column: 2, style: theme.muted)
        }
        for (i, t) in recent.prefix(max(0, transitionsHeight - 2)).enumerated() {
            let r = top + 1 + i
            var c = f.put(Format.dateTime(t.effectiveAt), row: r, column: 2, style: theme.muted)
            c = f.put("  ", row: r, column: c)
            c = f.put(Self.align(t.from?.rawValue ?? "new", 7, right: false), row: r, column: c, style: t.from.map { theme.state($0) } ?? theme.muted)
            c = f.put(" → ", row: r, column: c)
            c = f.put(Self.align(t.to.rawValue, 7, right: false), row: r, column: c, style: theme.state(t.to))
            f.put("  " + t.reason.rawValue, row: r, column: c, width: width - c - 2)
        }
        top += transitionsHeight
        if sessionsHeight >= 3 {
            box(&f, title: "sessions, newest first", row: top, height: sessionsHeight)
            for (i, s) in d.sessions.prefix(sessionsHeight - 2).enumerated() {
                let r = top + 1 + i
                let ended = s.endedAt.map { Format.dateTime($0) } ?? "open          "
                let duration = Format.age((s.endedAt ?? now) - s.startedAt)
                let line = "\(Format.dateTime(s.startedAt)) – \(ended)  \(Self.align(duration, 6, right: true))  \(Self.align(s.endReason ?? "", 14, right: false)) \(Self.align(String(s.heartbeats), 7, right: true)) beats  \(s.remoteAddress ?? "")"
                f.put(line, row: r, column: 2, width: width - 4, style: s.endedAt == nil ? theme.state(.online) : .plain)
            }
        }
        let r = f.size.rows - 1
        f.fill(" ", row: r, column: 0, width: width, style: theme.bar)
        f.put(" Esc back  ? help  q quit", row: r, column: 0, style: theme.bar)
    }

    /// A box from `row`, `height` rows tall, `width` columns wide from `column` (the whole width by
    /// default), with a title in its top edge.
    func box(_ f: inout Frame, title: String, row: Int, height: Int, column: Int = 0, width: Int? = nil) {
        let w = width ?? f.size.columns - column
        let last = min(f.size.rows - 2, row + height - 1)
        guard height >= 2, w >= 2, last > row else { return }
        let right = column + w - 1
        f.fill("─", row: row, column: column + 1, width: w - 2, style: theme.frame)
        f.fill("─", row: last, column: column + 1, width: w - 2, style: theme.frame)
        for r in row...last {
            f.put("│", row: r, column: column, style: theme.frame)
            f.put("│", row: r, column: right, style: theme.frame)
        }
        f.put("┌", row: row, column: column, style: theme.frame)
        f.put("┐", row: row, column: right, style: theme.frame)
        f.put("└", row: last, column: column, style: theme.frame)
        f.put("┘", row: last, column: right, style: theme.frame)
        f.put(" \(title) ", row: row, column: column + 2, width: w - 4, style: theme.heading)
    }

    // MARK: Help

    static let helpLines = [
        "↑ ↓  j k       move",
        "PgUp PgDn      a page",
        "Home End  g G  first, last",
        "Enter          the agent's detail",
        "Esc            back; clear the filter",
        "/              filter by id or state",
        "s  Tab  ← →    sort by the next column",
        "1 … 7          sort by column n",
        "r              reverse the sort",
        "?              this help",
        "q  Ctrl-C      quit",
    ]

    func help(_ f: inout Frame) {
        let inner = Self.helpLines.map { $0.unicodeScalars.count }.max()! + 4
        let w = min(f.size.columns, inner + 2)
        let h = min(f.size.rows, Self.helpLines.count + 4)
        let left = (f.size.columns - w) / 2
        let top = (f.size.rows - h) / 2
        for r in top..<(top + h) { f.fill(" ", row: r, column: left, width: w) }
        box(&f, title: "keys", row: top, height: h, column: left, width: w)
        for (i, line) in Self.helpLines.prefix(max(0, h - 4)).enumerated() {
            f.put(line, row: top + 2 + i, column: left + 3, width: w - 4)
        }
    }
}
