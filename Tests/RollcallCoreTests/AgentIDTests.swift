import RollcallCore
import Testing

@Suite struct AgentIDTests {
    @Test(arguments: ["a", "web-01", "db.eu-west:3_x", String(repeating: "z", count: 128), "ABC.def_ghi:jkl-0123456789"])
    func acceptsIdsOfTheAllowedAlphabet(id: String) {
        #expect(AgentID(id) != nil)
        #expect(AgentID.validationError(id) == nil)
    }

    @Test(arguments: ["", "web 01", "web/01", "é", "a?b", String(repeating: "z", count: 129), "tab\tid"])
    func rejectsOtherIdsWithASentence(id: String) {
        #expect(AgentID(id) == nil)
        #expect(AgentID.validationError(id)?.isEmpty == false)
    }
}
