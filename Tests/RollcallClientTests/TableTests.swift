import RollcallClient
import RollcallCore
import Testing

@Suite struct TableTests {
    @Test func alignsColumnsTwoSpacesApartAndLeavesTheLastOneUnpadded() {
        let text = Table.render(header: ["ID", "STATE", "SINCE"], rows: [["web-01", "online", "3m"], ["db-01", "offline", "2h 5m"]])
        #expect(text == """
            ID      STATE    SINCE
            web-01  online   3m
            db-01   offline  2h 5m
            """)
    }

    @Test func showsControlCharactersInCellsAsEscapesAndMeasuresTheEscapedText() {
        let text = Table.render(header: ["ID", "REASON", "FROM"], rows: [["web-01", "bye\u{1B}[2J", "10.0.0.7"], ["db-01", "goodbye", "10.0.0.8\u{202E}"]])
        #expect(text == #"""
            ID      REASON        FROM
            web-01  bye\u{1B}[2J  10.0.0.7
            db-01   goodbye       10.0.0.8\u{202E}
            """#)
        #expect(text.utf8.allSatisfy { $0 >= 0x20 || $0 == UInt8(ascii: "\n") })
    }

    @Test func listsAnAgentsFieldsWithItsHostnameAndLabelsEscaped() {
        let agent = JSONValue.object([
            ("id", .string("web-01")),
            ("hostname", .string("web\u{1B}]0;pwned\u{7}")),
            ("agent_version", .null),
            ("labels", .object([("env", .string("prod\u{1B}[31m")), ("rack", .string("b3\u{9B}2J\u{202E}"))])),
            ("interval_ms", .number(5000)),
        ])
        let text = Table.fields(agent)
        #expect(text == #"""
            id            web-01
            hostname      web\u{1B}]0;pwned\u{7}
            agent_version -
            labels        {"env":"prod\u001b[31m","rack":"b3\u009b2J\u202e"}
            interval_ms   5000
            """#)
        #expect(text.unicodeScalars.allSatisfy { $0 == "\n" || $0 == "\\" || !TerminalText.needsEscape($0) })
    }

    @Test func writesNestedValuesAsJSONThatStillParsesToTheSameStrings() throws {
        let status = JSONValue.object([("note", .string("a\u{7F}b\u{85}c\u{2066}d \"q\" \\ é"))])
        let line = Table.fields(.object([("status", status)]))
        let json = String(line.dropFirst(14))
        #expect(!json.unicodeScalars.contains { $0 != "\\" && TerminalText.needsEscape($0) })
        #expect(try JSONParser.parse(Array(json.utf8)) == status)
    }

    @Test func printsNothingForAnAnswerThatIsNotAnObject() {
        #expect(Table.fields(.array([])) == "")
    }
}
