#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOCore
import NIOPosix
import RollcallAgent
import RollcallCore
import RollcallTransport

/// `rollcall-agent`: parse the settings, then run the agent's connection loop on one event-loop
/// thread while the main thread waits for a signal or the end. Two threads in all: the agent's
/// tasks prefer the event loop as their executor, it sleeps on the loop's timers, and signals
/// arrive through a pipe rather than a libdispatch source, so no thread pool is started for a
/// process that holds one connection.
@main
enum AgentCommand {
    static func main() {
        let settings: AgentSettings
        let configuration: AgentConfiguration
        do throws(AgentCommandLine.UsageError) {
            switch try AgentCommandLine.parse(Array(CommandLine.arguments.dropFirst())) {
            case .help:
                print(AgentCommandLine.help, terminator: "")
                exit(0)
            case .version:
                print(AgentCommandLine.version)
                exit(0)
            case .run(let flags, let configFile):
                settings = try AgentCommandLine.settings(flags: flags, configFile: configFile, environment: currentEnvironment())
            }
            do {
                configuration = try settings.configuration(hostname: currentHostName())
            } catch {
                throw AgentCommandLine.UsageError(error.description)
            }
            if let level = settings.logLevel, Logger.Level(rawValue: level) == nil {
                throw AgentCommandLine.UsageError("the log level must be one of trace, debug, info, notice, warning, error, critical")
            }
        } catch {
            printToStandardError(AgentCommandLine.usageMessage(error))
            exit(64)
        }

        // Before any thread exists, so that none of them can miss a signal.
        let signals = SignalPipe.install([SIGTERM, SIGINT])
        // One event-loop thread: the agent has one connection, and every thread costs the
        // machine it runs on memory (stack, malloc arena) for nothing.
        NIOSingletons.groupLoopCountSuggestion = 1
        let executor = EventLoopTaskExecutor(MultiThreadedEventLoopGroup.singleton.any())

        var logger = Logger(label: "rollcall-agent")
        logger.logLevel = settings.logLevel.flatMap(Logger.Level.init(rawValue:)) ?? .info
        logger[metadataKey: "agent"] = "\(configuration.agentID)"
        let shutdown = AgentShutdown()
        let runner = AgentRunner(configuration: configuration, logger: logger, shutdown: shutdown)
        Task.detached(executorPreference: executor) {
            var status: Int32 = 0
            do {
                try await runner.run()
            } catch let stop as AgentStop {
                printToStandardError("rollcall-agent: \(stop.message)")
                status = stop.exitCode
            } catch {
                printToStandardError("rollcall-agent: \(TerminalText.escaped(String("\(error)".prefix(300))))")
                status = 1
            }
            signals.finish(status: status)
        }
        var stopping = false
        while true {
            switch signals.next() {
            case .signal(let number):
                // The first SIGTERM/SIGINT says bye and closes; a second one does not wait
                // (128 + the signal's number, as a shell reports a process killed by it).
                if stopping { _exit(128 + number) }
                stopping = true
                shutdown.trigger()
            case .finished(let status):
                exit(status)
            }
        }
    }
}

/// Signals as bytes in a pipe (the self-pipe pattern): the handler only writes one byte, which is
/// safe in a signal handler, and the main thread reads them, along with the agent's end.
struct SignalPipe: Sendable {
    enum Event {
        case signal(Int32)
        case finished(status: Int32)
    }

    /// The pipe's write end, for the handler, which can capture nothing. A constant pointer set
    /// before the handlers are installed: reading it in the handler is a plain load (a `var`
    /// would go through the runtime's exclusivity checks, which are not async-signal-safe).
    nonisolated(unsafe) static let handlerWriteEnd: UnsafeMutablePointer<Int32> = {
        let pointer = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        pointer.initialize(to: -1)
        return pointer
    }()
    let readEnd: Int32
    let writeEnd: Int32

    static func install(_ signals: [Int32]) -> SignalPipe {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            printToStandardError("rollcall-agent: cannot create a pipe for signals (errno \(errno))")
            exit(71)
        }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        // A handler must never block, even on a full pipe (a flood of signals); a lost byte then
        // is one of many of the same meaning.
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        Self.handlerWriteEnd.pointee = fds[1]
        // A parent may hand down a mask that blocks them (some process launchers do): unblock
        // them here, before any thread exists, since every thread inherits this mask.
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in signals { sigaddset(&mask, signal) }
        pthread_sigmask(SIG_UNBLOCK, &mask, nil)
        for signal in signals {
            var action = sigaction()
            #if canImport(Glibc)
            action.__sigaction_handler.sa_handler = { number in
                let saved = errno
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(SignalPipe.handlerWriteEnd.pointee, &byte, 1)
                errno = saved
            }
            #else
            action.sa_handler = { number in
                let saved = errno
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(SignalPipe.handlerWriteEnd.pointee, &byte, 1)
                errno = saved
            }
            #endif
            action.sa_flags = SA_RESTART
            sigaction(signal, &action, nil)
        }
        return SignalPipe(readEnd: fds[0], writeEnd: fds[1])
    }

    /// Tells the main thread the agent is done: 0xFF, then the exit status. Retried while the
    /// (non-blocking) pipe is full of signal bytes the main thread has yet to read.
    func finish(status: Int32) {
        var bytes: [UInt8] = [0xFF, UInt8(truncatingIfNeeded: status)]
        while write(writeEnd, &bytes, 2) != 2 {
            guard errno == EAGAIN || errno == EINTR else { exit(status) }
            usleep(1000)
        }
    }

    /// Blocks until a signal arrives or the agent is done.
    func next() -> Event {
        while true {
            let byte = readByte()
            if byte == 0xFF { return .finished(status: Int32(readByte())) }
            if byte != 0 { return .signal(Int32(byte)) }
        }
    }

    private func readByte() -> UInt8 {
        var byte: UInt8 = 0
        while true {
            let n = read(readEnd, &byte, 1)
            if n == 1 { return byte }
            if n < 0 && errno == EINTR { continue }
            // The pipe cannot close while this process holds its write end; stop rather than spin.
            printToStandardError("rollcall-agent: the signal pipe failed (errno \(errno))")
            _exit(71)
        }
    }
}

/// One line on standard error, written whole.
func printToStandardError(_ line: String) {
    var text = line
    text.append("\n")
    text.withUTF8 { bytes in
        var rest = UnsafeRawBufferPointer(bytes)
        while !rest.isEmpty {
            let written = write(2, rest.baseAddress, rest.count)
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            rest = UnsafeRawBufferPointer(rebasing: rest[written...])
        }
    }
}
