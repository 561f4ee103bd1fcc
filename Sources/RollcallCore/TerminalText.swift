/// Text that agents send (hostname, labels, status), made safe to show on a terminal or to write
/// into a log line (SPEC §8).
///
/// A terminal acts on control characters: ESC and the C1 controls start sequences that move the
/// cursor, clear the screen, recolour what follows or retitle the window, a carriage return lets
/// a line overwrite itself, and the bidi embeddings, overrides and isolates reorder the characters
/// after them so that a line reads differently from what it holds. ``escaped(_:)`` writes each of
/// them as a visible escape instead, in the notation of a Swift string literal:
///
/// | character | shown as |
/// |---|---|
/// | backslash | `\\` |
/// | line feed, carriage return, tab | `\n`, `\r`, `\t` |
/// | any other C0 control (U+0000–U+001F), DEL (U+007F), C1 control (U+0080–U+009F) | `\u{1B}`, `\u{7F}`, `\u{9B}` |
/// | bidi embedding and override (U+202A–U+202E), isolate (U+2066–U+2069) | `\u{202E}`, `\u{2066}` |
///
/// Hex digits are upper case, without leading zeros. Because the backslash itself is escaped,
/// every backslash in the result starts an escape: a label that holds the six characters `\u{1B}`
/// shows as `\\u{1B}`, never as if it held an ESC.
///
/// Everything else is shown as it is: letters of any script, emoji, combining marks, and the bidi
/// marks U+200E, U+200F and U+061C, which only tip the direction of neighbouring punctuation and
/// cannot make one word read as another.
public enum TerminalText {
    /// `text` with every character that a terminal would act on written as a visible escape.
    ///
    /// Returns `text` itself, without copying, when there is nothing to escape: the case of nearly
    /// every id, hostname, version and label.
    public static func escaped(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: needsEscape) else { return text }
        var out = String()
        out.reserveCapacity(text.utf8.count + 8)
        out.unicodeScalars.append(contentsOf: scalars[..<first])
        for scalar in scalars[first...] {
            if let escape = escape(scalar) {
                out += escape
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Whether ``escaped(_:)`` writes `scalar` as an escape rather than as itself.
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x5C, 0x7F...0x9F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    /// The escape ``escaped(_:)`` writes for `scalar`, or `nil` when `scalar` is shown as itself.
    ///
    /// For code that lays text out one scalar at a time and must know how wide each one shows.
    public static func escape(_ scalar: Unicode.Scalar) -> String? {
        switch scalar {
        case "\\": #"\\"#
        case "\n": #"\n"#
        case "\r": #"\r"#
        case "\t": #"\t"#
        case _ where needsEscape(scalar): #"\u{"# + String(scalar.value, radix: 16, uppercase: true) + "}"
        default: nil
        }
    }
}
