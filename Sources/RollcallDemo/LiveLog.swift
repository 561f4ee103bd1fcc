import RollcallCore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Prints every transition as one readable line, coloured when the terminal allows it.
public struct LiveLog: Service {
    let transitions: AsyncStream<Transition>
    let colour: Bool
    let write: @Sendable (String) -> Void

    public init(transitions: AsyncStream<Transition>, colour: Bool = LiveLog.terminalSupportsColour(), write: @escaping @Sendable (String) -> Void = LiveLog.printLine) {
        self.transitions = transitions
        self.colour = colour
        self.write = write
    }

    /// Colour when stdout is a terminal and `NO_COLOR` is unset (https://no-color.org).
    public static func terminalSupportsColour() -> Bool {
        #if canImport(Glibc)
        return isatty(1) == 1 && getenv("NO_COLOR") == nil
        #else
        return false
        #endif
    }

    /// Prints and flushes, so the log is live even through a pipe.
    @Sendable public static func printLine(_ line: String) {
        print(line)
        #if canImport(Glibc)
        fflush(nil)
        #endif
    }

    public func run() async throws {
        for await t in transitions.cancelOnGracefulShutdown() {
            write(Self.line(for: t, colour: colour))
        }
    }

    /// `06:31:02.123  #42  web-07           online  → suspect  missed_heartbeat`
    public static func line(for t: Transition, colour: Bool) -> String {
        let time = String(Timestamp.rfc3339(t.detectedAt).dropFirst(11).dropLast())
        let from = pad(t.from?.rawValue ?? "new", 7)
        let to = pad(t.to.rawValue, 7)
        let id = pad(t.agentID.rawValue, 16)
        let toText = colour ? paint(to, t.to) : to
        let fromText = colour && t.from != nil ? paint(from, t.from!) : from
        return "\(time)  #\(pad(String(t.id), 6))  \(id) \(fromText) → \(toText)  \(t.reason.rawValue)"
    }

    static func paint(_ text: String, _ state: PresenceState) -> String {
        let code: String
        switch state {
        case .online: code = "32"
        case .suspect: code = "33"
        case .offline: code = "31"
        case .unknown: code = "90"
        }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }
}
