#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import RollcallDashboard

/// The terminal the dashboard takes over: raw input, the alternate screen, a hidden cursor. Every
/// way out gives the terminal back as it was: ``restore()`` on a normal exit, the signal handlers
/// on SIGTERM, SIGHUP and SIGINT, and the crash handlers on SIGSEGV, SIGBUS, SIGILL, SIGTRAP,
/// SIGFPE and SIGABRT (a Swift runtime trap), which restore and then die of the same signal.
public enum Terminal {
    /// Alternate screen, cursor hidden, cleared.
    static let enterSequence = "\u{1B}[?1049h\u{1B}[?25l\u{1B}[0m\u{1B}[2J"
    /// Attributes reset, cursor shown, main screen back.
    static let leaveSequence = "\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l"

    /// Whether stdin and stdout are a terminal the dashboard can take over.
    public static var isInteractive: Bool { isatty(0) == 1 && isatty(1) == 1 }

    /// Current size; 24 × 80 when the terminal does not say.
    public static func size() -> ScreenSize {
        var w = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &w) == 0, w.ws_row > 0, w.ws_col > 0 {
            return ScreenSize(rows: Int(w.ws_row), columns: Int(w.ws_col))
        }
        return ScreenSize(rows: 24, columns: 80)
    }

    /// Switches to raw mode and the alternate screen, and installs the handlers that undo it.
    /// `onSignal` runs (on a signal-handling thread, not in the handler) for SIGTERM, SIGINT, SIGHUP
    /// and SIGWINCH; the program decides what to do.
    public static func enter() throws(TerminalError) {
        var original = termios()
        guard tcgetattr(0, &original) == 0 else { throw TerminalError(message: "stdin is not a terminal (tcgetattr failed)") }
        savedTermios = original
        var raw = original
        cfmakeraw(&raw)
        guard tcsetattr(0, TCSAFLUSH, &raw) == 0 else { throw TerminalError(message: "cannot switch the terminal to raw mode") }
        active = 1
        for sig in [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = crashHandler
            action.sa_flags = Int32(bitPattern: UInt32(truncatingIfNeeded: SA_RESETHAND))
            sigaction(sig, &action, nil)
        }
        write(enterSequence)
    }

    /// Gives the terminal back. Safe to call more than once.
    public static func restore() {
        guard active == 1 else { return }
        active = 0
        write(leaveSequence)
        var t = savedTermios
        tcsetattr(0, TCSAFLUSH, &t)
    }

    /// Writes bytes to stdout, all of them, retrying on EINTR.
    public static func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(1, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }

    public static func write(_ text: String) { write(Array(text.utf8)) }

    // Async-signal-safe state for the crash handler: plain globals, written before the handlers
    // are installed, read only with write(2) and tcsetattr(3) in the handler.
    nonisolated(unsafe) static var savedTermios = termios()
    nonisolated(unsafe) static var active: sig_atomic_t = 0
}

/// Restores the terminal and lets the signal's default action (a core dump, usually) happen.
private func crashHandler(_ sig: Int32) {
    if Terminal.active == 1 {
        Terminal.active = 0
        // `leaveSequence` spelled again as a local literal: reading a static in a signal handler
        // may run its lazy initializer, which is not async-signal-safe.
        let leave: StaticString = "\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l"
        _ = Glibc.write(1, leave.utf8Start, leave.utf8CodeUnitCount)
        tcsetattr(0, TCSANOW, &Terminal.savedTermios)
        let note: StaticString = "rollcall top: crashed; terminal restored\r\n"
        _ = Glibc.write(2, note.utf8Start, note.utf8CodeUnitCount)
    }
    raise(sig)  // SA_RESETHAND put the default action back
}

public struct TerminalError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
