import RollcallDashboard
import Testing

@Suite struct KeyDecoderTests {
    @Test func decodesLettersControlKeysAndTheKeysOfNavigation() {
        var d = KeyDecoder()
        #expect(run { d.decode(Array("jk/q".utf8)) } == [.character("j"), .character("k"), .character("/"), .character("q")])
        #expect(run { d.decode([0x03, 0x0D, 0x7F, 0x09]) } == [.control("c"), .enter, .backspace, .tab])
        #expect(run { d.decode(Array("\u{1B}[A\u{1B}[B\u{1B}[C\u{1B}[D".utf8)) } == [.up, .down, .right, .left])
        #expect(run { d.decode(Array("\u{1B}[5~\u{1B}[6~\u{1B}[H\u{1B}[F\u{1B}[1~\u{1B}[4~\u{1B}OA\u{1B}OH".utf8)) } == [.pageUp, .pageDown, .home, .end, .home, .end, .up, .home])
    }

    @Test func waitsForTheRestOfAnEscapeSequenceSplitAcrossReads() {
        var d = KeyDecoder()
        #expect(run { d.decode(Array("j\u{1B}[".utf8)) } == [.character("j")])
        #expect(run { d.decode(Array("5".utf8)) } == [])
        #expect(run { d.decode(Array("~k".utf8)) } == [.pageUp, .character("k")])
    }

    @Test func takesALoneEscapeAsTheEscapeKeyAndSkipsUnknownSequences() {
        var d = KeyDecoder()
        #expect(run { d.decode([0x1B]) } == [.escape])
        #expect(run { d.decode(Array("\u{1B}[1;5P\u{1B}[200~x".utf8)) } == [.character("x")])
        #expect(run { d.decode(Array("\u{1B}\u{1B}[A".utf8)) } == [.escape, .up])
    }

    @Test func decodesUTF8TypedIntoTheFilter() {
        var d = KeyDecoder()
        let bytes = Array("é".utf8)
        #expect(run { d.decode(bytes.prefix(1)) } == [])
        #expect(run { d.decode(bytes.suffix(1)) } == [.character("é")])
    }
}
