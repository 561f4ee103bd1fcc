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

    @Test func parsesWhatItFormatsBackToTheSameMillisecond() {
        for ms: Int64 in [0, 951_782_400_000, 1_764_000_000_123, 1_764_028_799_999, 4_102_444_800_000, -86_400_001] {
            #expect(Timestamp.parse(Timestamp.rfc3339(ms)) == ms)
        }
        #expect(Timestamp.parse("2026-11-25T09:08:29Z") == 1_795_597_709_000)
        #expect(Timestamp.parse("2026-11-25T09:08:29.5Z") == 1_795_597_709_500)
        #expect(Timestamp.parse("2026-11-25T09:08:29.123456Z") == 1_795_597_709_123)
    }

    @Test func refusesTimestampsThatAreNotUTCRFC3339() {
        for text in ["", "2026-11-25", "2026-11-25T09:08:29", "2026-11-25T09:08:29+01:00", "2026-13-25T09:08:29Z", "2026-11-25T25:08:29Z",
            "2026-11-25T09:08:29.Z", "2026-11-25T09:08:29.12aZ", "20x6-11-25T09:08:29Z"] {
            #expect(Timestamp.parse(text) == nil, "\(text)")
        }
    }
}
