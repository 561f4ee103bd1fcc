import RollcallCore
import Testing

@Suite struct TimestampTests {
    @Test func formatsRFC3339WithMilliseconds() {
        #expect(Timestamp.rfc3339(0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.rfc3339(1_764_000_000_123) == "2025-11-24T16:00:00.123Z")
        #expect(Timestamp.rfc3339(951_782_400_000) == "2000-02-29T00:00:00.000Z")
        #expect(Timestamp.day(1_764_028_799_999) == "2025-11-24")
        #expect(Timestamp.day(1_764_028_800_000) == "2025-11-25")
    }
}
