import RollcallCore
import Testing

@Suite struct TerminalTextTests {
    @Test(arguments: ["web-01", "", "db.eu-west:3_x", "café Zürich", "東京-01", "rack 🚀 b3", "e\u{301}", "a\u{200F}b", "x/y \"quoted\" 100%"])
    func leavesOrdinaryTextAsItIs(text: String) {
        #expect(TerminalText.escaped(text) == text)
    }

    @Test func handsBackTheSameStringWhenThereIsNothingToEscape() {
        let text = String(repeating: "web-01.example.com ", count: 20)
        let result = TerminalText.escaped(text)
        // Same storage: the fast path neither copies nor allocates.
        #expect(result.utf8.withContiguousStorageIfAvailable { $0.baseAddress } == text.utf8.withContiguousStorageIfAvailable { $0.baseAddress })
    }

    @Test func writesLineFeedCarriageReturnAndTabAsShortEscapes() {
        #expect(TerminalText.escaped("a\nb\rc\td") == #"a\nb\rc\td"#)
    }

    @Test func writesEveryOtherC0ControlAsAHexEscape() {
        #expect(TerminalText.escaped("\u{0}") == #"\u{0}"#)
        #expect(TerminalText.escaped("\u{7}") == #"\u{7}"#)
        #expect(TerminalText.escaped("\u{1B}") == #"\u{1B}"#)
        #expect(TerminalText.escaped("\u{1F}") == #"\u{1F}"#)
        for value in UInt32(0)...0x1F {
            let escaped = TerminalText.escaped(String(Unicode.Scalar(value)!))
            #expect(escaped.hasPrefix("\\") && escaped.count > 1)
        }
    }

    @Test func writesDeleteAndTheC1ControlsAsHexEscapes() {
        #expect(TerminalText.escaped("\u{7F}") == #"\u{7F}"#)
        #expect(TerminalText.escaped("\u{80}") == #"\u{80}"#)
        #expect(TerminalText.escaped("\u{9B}31m") == #"\u{9B}31m"#)
        #expect(TerminalText.escaped("\u{9F}") == #"\u{9F}"#)
        // The neighbours of the C1 range are letters and stay.
        #expect(TerminalText.escaped("~\u{A0}é") == "~\u{A0}é")
    }

    @Test func writesBidiEmbeddingsOverridesAndIsolatesAsHexEscapes() {
        for value in Array(UInt32(0x202A)...0x202E) + Array(UInt32(0x2066)...0x2069) {
            let scalar = Unicode.Scalar(value)!
            #expect(TerminalText.escaped(String(scalar)) == #"\u{"# + String(value, radix: 16, uppercase: true) + "}")
        }
        // Their neighbours are ordinary punctuation and stay.
        #expect(TerminalText.escaped("\u{2029}\u{202F}\u{2065}\u{206A}") == "\u{2029}\u{202F}\u{2065}\u{206A}")
    }

    @Test func escapesTheBackslashSoThatEscapesCannotBeForged() {
        #expect(TerminalText.escaped(#"C:\temp"#) == #"C:\\temp"#)
        // Six characters that look like an escape are told apart from a real ESC.
        #expect(TerminalText.escaped(#"\u{1B}"#) == #"\\u{1B}"#)
        #expect(TerminalText.escaped(#"\u{1B}"#) != TerminalText.escaped("\u{1B}"))
    }

    @Test func defusesAScreenClearAndABidiOverrideInOneLabel() {
        let label = "prod\u{1B}[2J\u{1B}[H\u{202E}nimda"
        let escaped = TerminalText.escaped(label)
        #expect(escaped == #"prod\u{1B}[2J\u{1B}[H\u{202E}nimda"#)
        #expect(escaped.unicodeScalars.allSatisfy { $0.value >= 0x20 && !TerminalText.needsEscape($0) || $0 == "\\" })
    }

    @Test func keepsTheTextAroundAnEscapeIntact() {
        #expect(TerminalText.escaped("héllo\u{1B}wörld 🚀\n") == #"héllo\u{1B}wörld 🚀\n"#)
    }

    @Test func describesEachScalarTheWayEscapedWritesIt() {
        #expect(TerminalText.escape("a") == nil)
        #expect(TerminalText.escape("é") == nil)
        #expect(TerminalText.escape("\u{1B}") == #"\u{1B}"#)
        #expect(TerminalText.escape("\\") == #"\\"#)
        #expect(TerminalText.needsEscape("\u{9B}") && !TerminalText.needsEscape("\u{A0}"))
    }
}
