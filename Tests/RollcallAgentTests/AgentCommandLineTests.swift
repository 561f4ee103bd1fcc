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
        #expect(error(["--server", "--id", "a"]) == "Missing value for '--server <url>'")
        #expect(try flags(["--id=--binary"]).id == "--binary")
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
        (["-x"], "Unknown option '-x'"),
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

    @Test func escapesWhatItEchoesBack() throws {
        #expect(!error(["--\u{1B}[2Jclear"]).contains("\u{1B}"))
        do {
            _ = try AgentCommandLine.settings(flags: AgentSettings(), configFile: "/nonexistent/\u{1B}]0;owned\u{07}", environment: [:])
            Issue.record("a missing config file was accepted")
        } catch {
            #expect(!error.description.contains("\u{1B}") && !error.description.contains("\u{07}"))
        }
        #expect(throws: AgentSettings.Problem.self) { try AgentSettings.parseFile("serv\u{1B}[31mer = x") }
        do {
            _ = try AgentSettings.parseFile("serv\u{1B}[31mer = x")
        } catch {
            #expect(!error.description.contains("\u{1B}"))
        }
    }

    @Test func helpAndVersionWinWhereverTheyStand() throws {
        #expect(try AgentCommandLine.parse(["--id", "x", "--help"]) == .help)
        #expect(try AgentCommandLine.parse(["--sever", "x", "--help"]) == .help)
        #expect(try AgentCommandLine.parse(["--interval-ms", "soon", "--version"]) == .version)
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

    @Test func readsAConfigFileWithWindowsLineEnds() throws {
        let settings = try AgentSettings.parseFile("server = ws://h:1\r\nid = a\r\n")
        #expect(settings.server == "ws://h:1")
        #expect(settings.id == "a")
    }

    @Test func aTokenWithSpacesOrLineBreaksInsideIsRefusedAtStart() throws {
        var settings = AgentSettings()
        settings.server = "ws://127.0.0.1:7777"
        settings.id = "a"
        settings.token = "two\nlines"
        #expect(throws: AgentSettings.Problem.self) { try settings.configuration(hostname: nil) }
        settings.token = "fine-token_123"
        #expect(try settings.configuration(hostname: nil).token == "fine-token_123")
    }

    @Test func readsATokenFromAPipeButTheStatusFileOnlyFromARegularFile() throws {
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        let written = "pipe-token\n".utf8CString.withUnsafeBufferPointer { write(fds[1], $0.baseAddress, $0.count - 1) }
        #expect(written == 11)
        close(fds[1])
        defer { close(fds[0]) }
        #expect(readSmallTextFile("/dev/fd/\(fds[0])", limit: 64) == "pipe-token\n")
        #expect(readSmallFile("/dev/null", limit: 64) == nil)
        #expect(readSmallFile("/dev/null", limit: 64, streams: true) == [])
        // A stream that never ends stops at the limit.
        #expect(readSmallFile("/dev/zero", limit: 64, streams: true) == nil)
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
