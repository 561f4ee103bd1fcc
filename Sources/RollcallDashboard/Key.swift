/// A key press, decoded from the bytes a terminal sends in raw mode.
public enum Key: Equatable, Sendable {
    case character(Character)
    case up, down, left, right
    case pageUp, pageDown, home, end
    case enter, escape, backspace, tab
    /// Ctrl plus a letter, e.g. `.control("c")` for byte 0x03.
    case control(Character)
}

/// Turns terminal input bytes into keys. Escape sequences split across reads are kept until they
/// complete; a lone ESC at the end of a read is the Escape key (terminals send a sequence in one write).
public struct KeyDecoder: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    public mutating func decode(_ bytes: some Sequence<UInt8>) -> [Key] {
        pending.append(contentsOf: bytes)
        var keys: [Key] = []
        var i = 0
        scan: while i < pending.count {
            let b = pending[i]
            if b == 0x1B {
                if i + 1 >= pending.count {
                    keys.append(.escape)
                    i += 1
                    continue
                }
                guard let (key, length) = Self.escapeSequence(pending[(i + 1)...]) else { break scan }  // incomplete: wait
                if let key { keys.append(key) }
                i += 1 + length
                continue
            }
            switch b {
            case 0x0D, 0x0A: keys.append(.enter)
            case 0x7F, 0x08: keys.append(.backspace)
            case 0x09: keys.append(.tab)
            case 0x01...0x1A: keys.append(.control(Character(Unicode.Scalar(b + 0x60))))
            case 0x20..<0x7F: keys.append(.character(Character(Unicode.Scalar(b))))
            case 0xC0...0xF7:
                // A UTF-8 sequence: typed into the filter as one character.
                let length = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2
                guard i + length <= pending.count else { break scan }
                if let s = String(validating: pending[i..<(i + length)], as: UTF8.self), let c = s.first { keys.append(.character(c)) }
                i += length
                continue
            default: break
            }
            i += 1
        }
        pending.removeFirst(min(i, pending.count))
        return keys
    }

    /// Decodes what follows an ESC: the key (or `nil` for a sequence the dashboard ignores) and how
    /// many bytes it used; `nil` when the sequence is not complete yet.
    static func escapeSequence(_ rest: ArraySlice<UInt8>) -> (Key?, Int)? {
        guard let first = rest.first else { return nil }
        switch first {
        case UInt8(ascii: "["):
            // CSI: parameters and intermediates, then a final byte in 0x40...0x7E.
            var j = rest.startIndex + 1
            while j < rest.endIndex, !(0x40...0x7E).contains(rest[j]) { j += 1 }
            guard j < rest.endIndex else { return nil }
            let parameters = String(decoding: rest[(rest.startIndex + 1)..<j], as: UTF8.self)
            let length = j - rest.startIndex + 1
            switch rest[j] {
            case UInt8(ascii: "A"): return (.up, length)
            case UInt8(ascii: "B"): return (.down, length)
            case UInt8(ascii: "C"): return (.right, length)
            case UInt8(ascii: "D"): return (.left, length)
            case UInt8(ascii: "H"): return (.home, length)
            case UInt8(ascii: "F"): return (.end, length)
            case UInt8(ascii: "Z"): return (.tab, length)
            case UInt8(ascii: "~"):
                switch parameters.split(separator: ";").first {
                case "1", "7": return (.home, length)
                case "4", "8": return (.end, length)
                case "5": return (.pageUp, length)
                case "6": return (.pageDown, length)
                default: return (nil, length)
                }
            default: return (nil, length)
            }
        case UInt8(ascii: "O"):
            // SS3: application cursor keys.
            guard rest.count >= 2 else { return nil }
            switch rest[rest.startIndex + 1] {
            case UInt8(ascii: "A"): return (.up, 2)
            case UInt8(ascii: "B"): return (.down, 2)
            case UInt8(ascii: "C"): return (.right, 2)
            case UInt8(ascii: "D"): return (.left, 2)
            case UInt8(ascii: "H"): return (.home, 2)
            case UInt8(ascii: "F"): return (.end, 2)
            default: return (nil, 2)
            }
        case 0x1B:
            return (.escape, 0)  // ESC ESC: the first is a key of its own
        default:
            return (.escape, 0)  // Alt+key arrives as ESC key: treat ESC as Escape, the key follows
        }
    }
}
