import RollcallCore

/// How many colours the terminal shows.
public enum ColorMode: Sendable, Equatable {
    /// `NO_COLOR` or a dumb terminal: attributes (bold, reverse) only.
    case none
    case palette256
    case truecolor

    /// Chosen from the environment: `NO_COLOR` (https://no-color.org) wins, then `COLORTERM`.
    public static func detect(environment: [String: String]) -> ColorMode {
        if let v = environment["NO_COLOR"], !v.isEmpty { return .none }
        if environment["TERM"] == "dumb" { return .none }
        if let c = environment["COLORTERM"]?.lowercased(), c == "truecolor" || c == "24bit" { return .truecolor }
        return .palette256
    }
}

/// The styles the renderer uses, resolved once for a colour mode.
public struct Theme: Sendable {
    public let mode: ColorMode
    public let bar: Style
    public let heading: Style
    public let muted: Style
    public let selected: Style
    public let frame: Style
    private let states: [Style]

    public init(_ mode: ColorMode) {
        self.mode = mode
        func pick(_ p: UInt8, _ r: UInt8, _ g: UInt8, _ b: UInt8) -> Color {
            switch mode {
            case .none: .default
            case .palette256: .palette(p)
            case .truecolor: .rgb(r, g, b)
            }
        }
        // State order: online, suspect, offline, unknown.
        states = [
            Style(foreground: pick(41, 80, 200, 120)), Style(foreground: pick(178, 230, 180, 40), bold: true),
            Style(foreground: pick(196, 235, 70, 70), bold: true), Style(foreground: pick(245, 140, 140, 140)),
        ]
        if mode == .none {
            bar = Style(bold: true, reverse: true)
            selected = Style(reverse: true)
            muted = Style(dim: true)
        } else {
            bar = Style(foreground: pick(255, 235, 235, 235), background: pick(24, 30, 60, 100), bold: true)
            selected = Style(foreground: pick(255, 255, 255, 255), background: pick(238, 68, 68, 68))
            muted = Style(foreground: pick(244, 128, 128, 128))
        }
        heading = Style(bold: true)
        frame = mode == .none ? .plain : Style(foreground: pick(240, 90, 90, 90))
    }

    public func state(_ s: PresenceState) -> Style {
        switch s {
        case .online: states[0]
        case .suspect: states[1]
        case .offline: states[2]
        case .unknown: states[3]
        }
    }
}
