/// One character cell of the terminal with its style.
public struct Cell: Equatable, Sendable {
    public var character: Character
    public var style: Style

    public init(_ character: Character, _ style: Style = .plain) {
        self.character = character
        self.style = style
    }

    public static let blank = Cell(" ")
}

/// Colours and attributes of a cell, kept small so frames compare quickly.
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
}

/// A terminal colour: the terminal's default, one of the 256 palette entries, or 24-bit.
public enum Color: Equatable, Hashable, Sendable {
    case `default`
    case palette(UInt8)
    case rgb(UInt8, UInt8, UInt8)
}
