import RollcallCore

/// One character cell of the terminal with its style.
///
/// A cell holds a `Unicode.Scalar`, not a `Character`: everything the dashboard draws (agent ids are
/// ASCII by protocol, box drawing, blocks, arrows) is one scalar of width one, and a scalar keeps the
/// cell four bytes wide so a 200 × 60 frame compares in microseconds.
public struct Cell: Equatable, Sendable {
    public var scalar: Unicode.Scalar
    public var style: Style

    public init(_ scalar: Unicode.Scalar, _ style: Style = .plain) {
        self.scalar = scalar
        self.style = style
    }

    public static let blank = Cell(" ")
}

/// Colours and attributes of a cell.
public struct Style: Equatable, Hashable, Sendable {
    public var foreground: Color
    public var background: Color
    public var bold: Bool
    public var reverse: Bool
    public var dim: Bool

    public init(foreground: Color = .default, background: Color = .default, bold: Bool = false, reverse: Bool = false, dim: Bool = false) {
        self.foreground = foreground
        self.background = background
        self.bold = bold
        self.reverse = reverse
        self.dim = dim
    }

    public static let plain = Style()
    public static let bold = Style(bold: true)
    public static let dim = Style(dim: true)
    public static let reverse = Style(reverse: true)
}

/// A terminal colour: the terminal's default, one of the 256 palette entries, or 24-bit.
public enum Color: Equatable, Hashable, Sendable {
    case `default`
    case palette(UInt8)
    case rgb(UInt8, UInt8, UInt8)
}

/// A screenful of cells, row-major.
public struct Frame: Equatable, Sendable {
    public let size: ScreenSize
    public var cells: [Cell]

    public init(size: ScreenSize) {
        self.size = size
        self.cells = Array(repeating: .blank, count: size.rows * size.columns)
    }

    public subscript(row: Int, column: Int) -> Cell {
        get { cells[row * size.columns + column] }
        set { cells[row * size.columns + column] = newValue }
    }

    /// Writes `text` from `column` on `row`, clipped to `width` columns (and to the screen);
    /// returns the column after the last one written.
    ///
    /// This is where every text of every view becomes cells, an agent's hostname and labels among
    /// them, so it is where they are made safe: `text` is drawn as ``TerminalText/escaped(_:)``
    /// writes it, and no control character reaches the terminal. Measure text for `put` with
    /// ``columns(of:)``.
    @discardableResult
    public mutating func put(_ text: String, row: Int, column: Int, width: Int? = nil, style: Style = .plain) -> Int {
        guard row >= 0, row < size.rows else { return column }
        let limit = min(size.columns, column + (width ?? size.columns))
        var c = column
        for scalar in TerminalText.escaped(text).unicodeScalars {
            guard c < limit else { break }
            if c >= 0 { self[row, c] = Cell(scalar, style) }
            c += 1
        }
        return c
    }

    /// The cells ``put(_:row:column:width:style:)`` takes for `text`: one per scalar of its
    /// escaped form.
    public static func columns(of text: String) -> Int { TerminalText.escaped(text).unicodeScalars.count }

    /// Fills `width` cells of `row` from `column` with `scalar`.
    public mutating func fill(_ scalar: Unicode.Scalar, row: Int, column: Int, width: Int, style: Style = .plain) {
        guard row >= 0, row < size.rows else { return }
        for c in max(0, column)..<max(max(0, column), min(size.columns, column + width)) { self[row, c] = Cell(scalar, style) }
    }

    /// Applies `style` to the cells of `row` from `column` on, keeping their characters.
    public mutating func restyle(row: Int, column: Int = 0, width: Int? = nil, _ change: (inout Style) -> Void) {
        guard row >= 0, row < size.rows else { return }
        let end = min(size.columns, column + (width ?? size.columns))
        for c in max(0, column)..<max(max(0, column), end) { change(&self[row, c].style) }
    }

    /// The frame as plain text, one string per row with trailing spaces removed: what the
    /// snapshot tests compare.
    public var lines: [String] {
        (0..<size.rows).map { r in
            var s = String.UnicodeScalarView()
            for c in 0..<size.columns { s.append(self[r, c].scalar) }
            var line = String(s)
            while line.last == " " { line.removeLast() }
            return line
        }
    }
}

/// Terminal size in character cells.
public struct ScreenSize: Equatable, Hashable, Sendable {
    public var rows: Int
    public var columns: Int

    public init(rows: Int, columns: Int) {
        self.rows = max(0, rows)
        self.columns = max(0, columns)
    }
}
