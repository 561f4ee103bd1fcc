import RollcallDashboard
import Testing

@Suite struct ScreenWriterTests {
    func frame(_ text: [String], columns: Int = 20) -> Frame {
        var f = Frame(size: ScreenSize(rows: text.count, columns: columns))
        for (r, line) in text.enumerated() { f.put(line, row: r, column: 0) }
        return f
    }

    @Test func writesTheFirstFrameInFullAndThenOnlyTheCellsThatChanged() {
        var writer = ScreenWriter(mode: .palette256)
        let first = String(decoding: writer.update(to: frame(["web-01  online", "db-01   online"])), as: UTF8.self)
        #expect(first.hasPrefix("\u{1B}[0m\u{1B}[2J\u{1B}[1;1Hweb-01  online"))
        let second = String(decoding: writer.update(to: frame(["web-01  online", "db-01   offline"])), as: UTF8.self)
        #expect(second == "\u{1B}[2;10Hffline")
        #expect(run { writer.update(to: frame(["web-01  online", "db-01   offline"])) }.isEmpty)
    }

    @Test func rewritesShortUnchangedStretchesInsteadOfJumpingOverThem() {
        var writer = ScreenWriter(mode: .none)
        _ = writer.update(to: frame(["abcdefghijklmnopqrst"]))
        #expect(String(decoding: run { writer.update(to: frame(["Xbcdefghijklmnopqrst"])) }, as: UTF8.self) == "\u{1B}[1;1HX")
        #expect(String(decoding: run { writer.update(to: frame(["YbcYefghijklmnopqrst"])) }, as: UTF8.self) == "\u{1B}[1;1HYbcY")
        #expect(String(decoding: run { writer.update(to: frame(["ZbcYefghijklmnopqrsZ"])) }, as: UTF8.self) == "\u{1B}[1;1HZ\u{1B}[1;20HZ")
    }

    @Test func emitsColoursOnlyWhenTheModeHasThem() {
        var f = Frame(size: ScreenSize(rows: 1, columns: 4))
        f.put("ok", row: 0, column: 0, style: Style(foreground: .palette(41), bold: true))
        var palette = ScreenWriter(mode: .palette256)
        #expect(String(decoding: run { palette.update(to: f) }, as: UTF8.self).contains("\u{1B}[0;1;38;5;41mok\u{1B}[0m"))
        var none = ScreenWriter(mode: .none)
        let plain = String(decoding: none.update(to: f), as: UTF8.self)
        #expect(plain.contains("\u{1B}[0;1mok") && !plain.contains("38;"))
        var rgb = ScreenWriter(mode: .truecolor)
        var g = Frame(size: ScreenSize(rows: 1, columns: 2))
        g.put("x", row: 0, column: 0, style: Style(foreground: .rgb(1, 2, 3)))
        #expect(String(decoding: run { rgb.update(to: g) }, as: UTF8.self).contains("38;2;1;2;3m"))
    }

    @Test func redrawsEverythingAfterAResize() {
        var writer = ScreenWriter(mode: .none)
        _ = writer.update(to: frame(["abc"], columns: 10))
        let out = String(decoding: writer.update(to: frame(["abc"], columns: 12)), as: UTF8.self)
        #expect(out.contains("\u{1B}[2J") && out.contains("abc"))
    }

    @Test func honoursNoColorAndColorTerm() {
        #expect(ColorMode.detect(environment: ["NO_COLOR": "1", "COLORTERM": "truecolor"]) == .none)
        #expect(ColorMode.detect(environment: ["NO_COLOR": ""]) == .palette256)
        #expect(ColorMode.detect(environment: ["COLORTERM": "truecolor"]) == .truecolor)
        #expect(ColorMode.detect(environment: ["TERM": "dumb"]) == .none)
    }
}
