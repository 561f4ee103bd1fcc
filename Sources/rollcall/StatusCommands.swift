import ArgumentParser
import Foundation
import RollcallClient
import RollcallCore

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Counts per state, heartbeats per second, and the agents that are not online.",
        discussion: "With --exit-code: exit 1 when any agent is offline, 0 otherwise (2 when the server cannot be reached)."
    )

    @OptionGroup var client: ClientOptions

    @Flag(name: .customLong("exit-code"), help: "Exit 1 when any agent is offline.")
    var exitCode = false

    func run() async throws {
        try await runClient {
            let api = try client.client
            let summary = try await api.get("/v1/summary")
            var notOnline: [JSONValue] = []
            for state in ["suspect", "offline", "unknown"] {
                if case .array(let agents)? = try await api.get("/v1/agents?state=\(state)&limit=1000")["agents"] { notOnline += agents }
            }
            let offline = summary["agents"]?["offline"]?.int64Value ?? 0
            if client.json {
                printJSON(.object([("summary", summary), ("not_online", .array(notOnline))]))
            } else {
                let counts = ["online", "suspect", "offline", "unknown"].map { "\($0) \(summary["agents"]?[$0]?.int64Value ?? 0)" }
                print(counts.joined(separator: "   ") + "   ·   \(formatRate(summary["heartbeats_per_second"])) heartbeats/s   ·   \(summary["connections"]?.int64Value ?? 0) connections")
                if notOnline.isEmpty {
                    print("every agent is online")
                } else {
                    print("")
                    let rows = notOnline.map { a in
                        [a["id"]?.stringValue ?? "", a["state"]?.stringValue ?? "", since(a["since"]?.stringValue), a["last_seen"]?.stringValue ?? "-"]
                    }
                    print(Table.render(header: ["ID", "STATE", "FOR", "LAST SEEN"], rows: rows))
                }
            }
            if exitCode && offline > 0 { throw ExitCode(1) }
        }
    }

    func formatRate(_ value: JSONValue?) -> String {
        if case .number(let d)? = value { return String(format: "%.1f", d) }
        return "0"
    }
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One agent's transitions and sessions, with durations.")

    @OptionGroup var client: ClientOptions

    @Argument(help: "The agent id.")
    var agent: String

    @Option(help: "Show the latest this many transitions and sessions.")
    var limit: Int = 20

    func validate() throws {
        if let problem = AgentID.validationError(agent) { throw ValidationError(problem) }
        guard (1...1000).contains(limit) else { throw ValidationError("--limit must be between 1 and 1000") }
    }

    func run() async throws {
        try await runClient {
            let api = try client.client
            // The latest transitions straight from the newest end (one more than shown, for the
            // first one's duration), then both tables oldest first, like a log.
            let page = try await api.get("/v1/agents/\(agent)/transitions?before=\(Int64.max)&limit=\(limit + 1)")
            var transitions: [JSONValue] = []
            if case .array(let items)? = page["transitions"] { transitions = items.reversed() }
            let sessions = try await api.get("/v1/agents/\(agent)/sessions?limit=\(limit)")
            var sessionItems: [JSONValue] = []
            if case .array(let items)? = sessions["sessions"] { sessionItems = items.reversed() }
            if client.json {
                printJSON(.object([("transitions", .array(Array(transitions.suffix(limit)))), ("sessions", .array(sessionItems))]))
                return
            }
            print("transitions of \(agent) (the latest \(limit), oldest first):")
            var rows: [[String]] = []
            for (i, t) in transitions.enumerated() where i >= transitions.count - limit {
                let next = i + 1 < transitions.count ? transitions[i + 1]["effective_at"]?.stringValue : nil
                rows.append([
                    t["effective_at"]?.stringValue ?? "", "\(t["from"]?.stringValue ?? "new") → \(t["to"]?.stringValue ?? "")",
                    t["reason"]?.stringValue ?? "", duration(from: t["effective_at"]?.stringValue, to: next),
                ])
            }
            print(Table.render(header: ["AT", "CHANGE", "REASON", "LASTED"], rows: rows))
            print("\nsessions (the latest \(limit), oldest first):")
            let sessionRows = sessionItems.map { s in
                [
                    s["started_at"]?.stringValue ?? "", durationMs(s["duration_ms"]?.int64Value) ?? "open",
                    s["end_reason"]?.stringValue ?? "-", s["close_code"]?.int64Value.map(String.init) ?? "-",
                    String(s["heartbeats"]?.int64Value ?? 0), s["remote_addr"]?.stringValue ?? "-",
                ]
            }
            print(Table.render(header: ["STARTED", "LASTED", "ENDED BY", "CODE", "BEATS", "FROM"], rows: sessionRows))
        }
    }
}

/// "3h 12m" from RFC 3339 times (to now when `to` is nil).
func duration(from: String?, to: String?) -> String {
    guard let from, let start = parseTime(from) else { return "-" }
    let end = to.flatMap(parseTime) ?? Date()
    return durationMs(Int64(end.timeIntervalSince(start) * 1000)).map { to == nil ? $0 + " (so far)" : $0 } ?? "-"
}

func since(_ time: String?) -> String { duration(from: time, to: nil) }

func durationMs(_ ms: Int64?) -> String? {
    guard let ms else { return nil }
    let s = ms / 1000
    if s < 1 { return "\(ms) ms" }
    if s < 60 { return "\(s)s" }
    if s < 3600 { return "\(s / 60)m \(s % 60)s" }
    if s < 86400 { return "\(s / 3600)h \(s % 3600 / 60)m" }
    return "\(s / 86400)d \(s % 86400 / 3600)h"
}

func parseTime(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.date(from: text)
}
