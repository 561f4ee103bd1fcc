/// Turns frames into terminal output: the first frame in full, every later one as the cells that
/// changed, so a frame where one agent changed state writes a few dozen bytes.
public struct ScreenWriter: Sendable {
    public let mode: ColorMode
    private var previous: Frame?

    public init(mode: ColorMode) { self.mode = mode }

    /// Forget what is on screen: the next frame is written in full (after a resize, or when
    /// something else may have written to the terminal).
    public mutating func invalidate() { previous = nil }

    /// The bytes that turn the screen from the last frame into `frame`.
    public mutating func update(to frame: Frame) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(previous == nil ? frame.cells.count * 2 : 256)
        // Every update ends with the attributes reset, so the terminal starts each one plain.
        var current = Style.plain
        let full = previous?.size != frame.size
        if full { out.append(contentsOf: Array("\u{1B}[0m\u{1B}[2J".utf8)) }
        let columns = frame.size.columns
        frame.cells.withUnsafeBufferPointer { new in
            for row in 0..<frame.size.rows {
                let base = row * columns
                var c = 0
                while c < columns {
                    // Skip cells already on screen.
                    if !full, let old = previous, old.cells[base + c] == new[base + c] {
                        c += 1
                        continue
                    }
                    // A run of changes; short stretches of unchanged cells inside it are rewritten
                    // rather than jumped over, which would cost more bytes.
                    var lastChanged = c
                    var j = c + 1
                    while j < columns, j - lastChanged <= 6 {
                        if full || previous?.cells[base + j] != new[base + j] { lastChanged = j }
                        j += 1
                    }
                    let end = lastChanged + 1
                    Self.moveCursor(&out, row: row, column: c)
                    for i in c..<end {
                        let cell = new[base + i]
                        if cell.style != current {
                            Self.sgr(&out, cell.style, mode: mode)
                            current = cell.style
                        }
                        Self.append(&out, cell.scalar)
                    }
                    c = end
                }
            }
        }
        if current != .plain { out.append(contentsOf: Array("\u{1B}[0m".utf8)) }
        previous = frame
        return out
    }

    static func moveCursor(_ out: inout [UInt8], row: Int, column: Int) {
        out.append(0x1B)
        out.append(UInt8(ascii: "["))
        decimal(&out, row + 1)
        out.append(UInt8(ascii: ";"))
        decimal(&out, column + 1)
        out.append(UInt8(ascii: "H"))
    }

    /// Select Graphic Rendition: reset, then the style's attributes and colours.
    static func sgr(_ out: inout [UInt8], _ style: Style, mode: ColorMode) {
        out.append(contentsOf: [0x1B, UInt8(ascii: "["), UInt8(ascii: "0")])
        if style.bold { out.append(contentsOf: Array(";1".utf8)) }
        if style.dim { out.append(contentsOf: Array(";2".utf8)) }
        if style.reverse { out.append(contentsOf: Array(";7".utf8)) }
        if mode != .none {
            colour(&out, style.foreground, base: 38)
            colour(&out, style.background, base: 48)
        }
        out.append(UInt8(ascii: "m"))
    }

    static func colour(_ out: inout [UInt8], _ color: Color, base: Int) {
        switch color {
        case .default: return
        case .palette(let n):
            out.append(UInt8(ascii: ";"))
            decimal(&out, base)
            out.append(contentsOf: Array(";5;".utf8))
            decimal(&out, Int(n))
        case .rgb(let r, let g, let b):
            out.append(UInt8(ascii: ";"))
            decimal(&out, base)
            out.append(contentsOf: Array(";2;".utf8))
            decimal(&out, Int(r))
            out.append(UInt8(ascii: ";"))
            decimal(&out, Int(g))
            out.append(UInt8(ascii: ";"))
            decimal(&out, Int(b))
        }
    }

    static func decimal(_ out: inout [UInt8], _ n: Int) {
        if n >= 10 { decimal(&out, n / 10) }
        out.append(UInt8(ascii: "0") + UInt8(n % 10))
    }

    static func append(_ out: inout [UInt8], _ scalar: Unicode.Scalar) {
        if scalar.isASCII {
            out.append(UInt8(scalar.value))
        } else {
            out.append(contentsOf: UTF8.encode(scalar)!)
        }
    }
}
