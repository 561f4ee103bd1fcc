@testable import RollcallTransport
import Testing

@Suite struct SilenceTests {
    @Test func aQuietPeriodPingsAndTheThirdInARowGivesUp() {
        var silence = Silence()
        #expect([silence.tick(), silence.tick(), silence.tick()] == [.ping, .ping, .dead(periods: 3)])
    }

    @Test func anythingHeardStartsTheCountAgain() {
        var silence = Silence()
        var verdicts: [Silence.Verdict] = []
        verdicts.append(silence.tick())
        verdicts.append(silence.tick())
        silence.heard()
        verdicts.append(silence.tick())
        verdicts.append(silence.tick())
        verdicts.append(silence.tick())
        #expect(verdicts == [.ping, .ping, .fine, .ping, .ping])
    }
}
