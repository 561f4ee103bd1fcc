import RollcallCore
import RollcallDashboard

/// 2026-11-25T12:00:00.000Z, the tests' "now".
let noon: Millis = 1_795_608_000_000

func state(_ rows: [AgentRow], server: String = "http://127.0.0.1:7777", connection: ConnectionStatus = .live, size: ScreenSize) -> DashboardState {
    var s = DashboardState(server: server)
    s.connection = connection
    s.fleet.applySnapshot(rows, cursor: 10)
    s.pageSize = Renderer.tableRows(for: size)
    s.refreshOrder(now: noon)
    return s
}

func lines(_ s: DashboardState, _ size: ScreenSize, colour: ColorMode = .none) -> [String] {
    Renderer(theme: Theme(colour)).render(s, size: size, now: noon).lines
}

let threeAgents = [
    AgentRow(id: "web-01", state: .online, since: noon - 3_600_000, lastSeen: noon - 400, rttMs: 0.213, flaps: 0, uptime: 1),
    AgentRow(id: "db-01", state: .offline, since: noon - 125_000, lastSeen: noon - 140_000, rttMs: nil, flaps: 3, uptime: 0.9712),
    AgentRow(id: "cache-01", state: .suspect, since: noon - 4_000, lastSeen: noon - 5_500, rttMs: 12.34, flaps: 1, uptime: 0.99991),
]

/// Runs a mutating call where `#expect` cannot take it directly.
func run<T>(_ body: () -> T) -> T { body() }
