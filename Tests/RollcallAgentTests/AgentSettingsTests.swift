import Foundation
import RollcallAgent
import RollcallCore
import Testing

@Suite struct AgentSettingsTests {
    @Test func readsAConfigFileWithLabelsAndComments() throws {
        let text = """
            # rollcall-agent
            server = "wss://rollcall.example:7777"
            id = web-01
            interval_ms = 2000   # every two seconds
            binary = true
            label.env = prod
            label.rack = b3
            """
        let settings = try AgentSettings.parseFile(text)
        #expect(settings.server == "wss://rollcall.example:7777")
        #expect(settings.id == "web-01")
        #expect(settings.intervalMs == 2000)
        #expect(settings.binary == true)
        #expect(settings.labels == ["env": "prod", "rack": "b3"])
    }

    @Test func refusesATokenInTheConfigFileAndUnknownKeys() {
        #expect(throws: AgentSettings.Problem.self) { try AgentSettings.parseFile("token = secret") }
        #expect(throws: AgentSettings.Problem.self) { try AgentSettings.parseFile("colour = blue") }
        #expect(throws: AgentSettings.Problem.self) { try AgentSettings.parseFile("just words") }
    }

    @Test func flagsBeatTheEnvironmentWhichBeatsTheFile() throws {
        var file = AgentSettings()
        file.server = "ws://file:1"
        file.id = "from-file"
        file.intervalMs = 1000
        file.labels = ["env": "file", "rack": "a1"]
        let env = AgentSettings.fromEnvironment(["ROLLCALL_ID": "from-env", "ROLLCALL_LABELS": "env=env", "ROLLCALL_TOKEN": "t-env"])
        var flags = AgentSettings()
        flags.intervalMs = 500
        let merged = file.overridden(by: env).overridden(by: flags)
        #expect(merged.server == "ws://file:1")
        #expect(merged.id == "from-env")
        #expect(merged.intervalMs == 500)
        #expect(merged.labels == ["env": "env", "rack": "a1"])
        let configuration = try merged.configuration(hostname: "h")
        #expect(configuration.token == "t-env")
        #expect(configuration.handshakeURL.hasPrefix("ws://file:1/v1/agent?id=from-env&boot="))
        #expect(configuration.handshakeURL.hasSuffix("&interval_ms=500"))
    }

    @Test func missingOrBadSettingsSayWhatToType() {
        #expect(throws: AgentSettings.Problem.self) { try AgentSettings().configuration(hostname: nil) }
        var s = AgentSettings()
        s.server = "http://x:1"
        s.id = "a"
        do {
            _ = try s.configuration(hostname: nil)
            Issue.record("accepted an http:// server")
        } catch {
            #expect(error.description.contains("ws://"))
        }
    }

    @Test func backoffIsFullJitterUnderACappedDoublingCeiling() {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2))
        var rng = SystemRandomNumberGenerator()
        var ceilings: [Duration] = []
        for _ in 0..<8 {
            let ceiling = backoff.ceiling
            ceilings.append(ceiling)
            let delay = backoff.nextDelay(using: &rng)
            #expect(delay >= .zero && delay <= ceiling)
        }
        #expect(ceilings.prefix(5) == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600)])
        #expect(ceilings.last == .seconds(2), "capped")
        backoff.reset()
        #expect(backoff.ceiling == .milliseconds(100))
    }

    @Test func aFleetsFirstReconnectsSpreadOverTheWholeCeiling() {
        // 1,000 agents losing the server at once: full jitter spreads their first retry uniformly.
        var rng = SystemRandomNumberGenerator()
        let delays = (0..<1000).map { _ -> Int64 in
            var b = Backoff(initial: .seconds(1), maximum: .seconds(30))
            let d = b.nextDelay(using: &rng)
            return d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        }
        let buckets = Dictionary(grouping: delays) { $0 / 100 }.mapValues(\.count)
        #expect(buckets.count >= 9, "retries land across the second, not in one burst")
        #expect(buckets.values.max()! < 200)
    }
}
