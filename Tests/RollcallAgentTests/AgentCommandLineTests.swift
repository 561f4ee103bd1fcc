import Foundation
import RollcallAgent
import RollcallCore
import Testing

@Suite struct AgentCommandLineTests {
    func flags(_ arguments: [String]) throws -> AgentSettings {
        guard case .run(let flags, _) = try AgentCommandLine.parse(arguments) else {
            Issue.record("\(arguments) did not parse to a run")
            return AgentSettings()
        }
        return flags
    }

    func error(_ arguments: [String]) -> String {
        do {
            let action = try AgentCommandLine.parse(arguments)
            Issue.record("\(arguments) was accepted as \(action)")
            return ""
        } catch {
            return error.description
        }
    }

    @Test func takesValuesAfterASpaceOrAnEqualsSignAndRepeatsLabels() throws {
        let settings = try flags([
            "--server", "ws://[::1]:7777", "--id=web-01", "--interval-ms", "2000", "--binary", "--label", "env=prod", "--label=rack=b3",
            "--give-up-after", "30", "--log-level", "debug",
        ])
        #expect(settings.server == "ws://[::1]:7777")
        #expect(settings.id == "web-01")
        #expect(settings.intervalMs == 2000)
        #expect(settings.binary == true)
        #expect(settings.labels == ["env": "prod", "rack": "b3"])
        #expect(settings.giveUpAfterSeconds == 30)
        #expect(settings.logLevel == "debug")
    }

    @Test func aValueMayStartWithDashesOnlyAfterAnEqualsSign() throws {
        #expect(try flags(["--id", "--binary"]).id == "--binary")
        #expect(try flags(["--label=k=--v"]).labels == ["k": "--v"])
    }

    @Test func namesAMistypedOptionAndSuggestsTheClosestOne() {
        #expect(error(["--sever", "ws://x"]) == "Unknown option '--sever'. Did you mean '--server'?")
        #expect(error(["--intervalms", "5"]).contains("Did you mean '--interval-ms'?"))
        #expect(error(["--completely-different"]) == "Unknown option '--completely-different'.")
    }

    @Test(arguments: [
        (["--server"], "Missing value for '--server <url>'"),
        (["--binary=yes"], "'--binary' takes no value"),
        (["web-01"], "Unexpected argument 'web-01'"),
        (["--", "--id", "x"], "Unexpected argument '--'"),
        (["--interval-ms", "soon"], "is invalid for '--interval-ms <ms>'"),
        (["--interval-ms", "99999999999999999999"], "is invalid for '--interval-ms <ms>'"),
        (["--label", "=v"], "--label must look like key=value"),
        (["--label", "novalue"], "--label must look like key=value"),
        (["--give-up-after", "0"], "--give-up-after must be a positive number of seconds"),
        (["--give-up-after", "-3"], "--give-up-after must be a positive number of seconds"),
    ])
    func refusesAMistakeWithASentence(arguments: [String], says: String) {
        #expect(error(arguments).contains(says), "\(arguments)")
    }

    @Test func escapesWhatItEchoesBack() {
        let text = error(["--\u{1B}[2Jclear"])
        #expect(!text.contains("\u{1B}"))
    }

    @Test func helpAndVersionWinWhereverTheyStand() throws {
        #expect(try AgentCommandLine.parse(["--id", "x", "--help"]) == .help)
        #expect(try AgentCommandLine.parse(["-h"]) == .help)
        #expect(try AgentCommandLine.parse(["--version"]) == .version)
        #expect(AgentCommandLine.help.contains("--server <url>"))
        #expect(AgentCommandLine.help.contains("ROLLCALL_TOKEN_FILE"))
    }

    @Test func theUsageMessageSaysWhereToGetHelp() {
        let text = AgentCommandLine.usageMessage(.init("Unknown option '--x'."))
        #expect(text.hasPrefix("Error: Unknown option '--x'.\nUsage: rollcall-agent"))
        #expect(text.hasSuffix("See 'rollcall-agent --help' for more information."))
    }

    @Test func mergesTheConfigFileTheEnvironmentAndTheFlagsInThatOrder() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("agent-cli-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("agent.conf").path
        try "server = ws://file:1\nid = from-file\ninterval_ms = 1000\nlabel.env = file\n".write(toFile: config, atomically: true, encoding: .utf8)
        let settings = try AgentCommandLine.settings(
            flags: try flags(["--interval-ms", "500", "--config", config]), configFile: config,
            environment: ["ROLLCALL_ID": "from-env", "ROLLCALL_LABELS": "env=env"])
        #expect(settings.server == "ws://file:1")
        #expect(settings.id == "from-env")
        #expect(settings.intervalMs == 500)
        #expect(settings.labels == ["env": "env"])
        #expect(throws: AgentCommandLine.UsageError.self) {
            try AgentCommandLine.settings(flags: AgentSettings(), configFile: directory.appendingPathComponent("missing").path, environment: [:])
        }
    }

    @Test func readsSmallRegularFilesOnlyAndNeverMoreThanTheLimit() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("agent-files-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("status.json").path
        try Data(repeating: UInt8(ascii: "x"), count: 1025).write(to: URL(fileURLWithPath: file))
        #expect(readSmallFile(file, limit: 1025)?.count == 1025)
        #expect(readSmallFile(file, limit: 1024) == nil)
        // A device that never ends and a directory are not read at all.
        #expect(readSmallFile("/dev/zero", limit: 1024) == nil)
        #expect(readSmallFile(directory.path, limit: 1024) == nil)
        #expect(readSmallFile(directory.appendingPathComponent("missing").path, limit: 1024) == nil)
    }
}
