/// RFC 3339 UTC timestamps with milliseconds, the API's time format, without Foundation.
///
/// A measured choice: listings format two or three times per agent, and writing the digits into
/// a fixed buffer keeps a 1,000-agent page from spending its time in date formatters.
public enum Timestamp {
    /// `2026-11-25T06:15:28.123Z` for epoch milliseconds.
    public static func rfc3339(_ ms: Millis) -> String {
        let days = floorDiv(ms, 86_400_000)
        let msOfDay = ms - days * 86_400_000
        let (y, m, d) = civil(fromDays: days)
        guard (0...9999).contains(y) else {
            return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(msOfDay / 3_600_000, 2)):\(pad(msOfDay / 60_000 % 60, 2)):\(pad(msOfDay / 1000 % 60, 2)).\(pad(msOfDay % 1000, 3))Z"
        }
        // Written digit by digit into 24 bytes: API listings format two of these per agent.
        return String(unsafeUninitializedCapacity: 24) { out in
            func put(_ value: Int64, _ width: Int, at offset: Int) {
                var v = value
                for i in stride(from: offset + width - 1, through: offset, by: -1) {
                    out[i] = UInt8(ascii: "0") + UInt8(v % 10)
                    v /= 10
                }
            }
            put(y, 4, at: 0)
            out[4] = UInt8(ascii: "-")
            put(m, 2, at: 5)
            out[7] = UInt8(ascii: "-")
            put(d, 2, at: 8)
            out[10] = UInt8(ascii: "T")
            put(msOfDay / 3_600_000, 2, at: 11)
            out[13] = UInt8(ascii: ":")
            put(msOfDay / 60_000 % 60, 2, at: 14)
            out[16] = UInt8(ascii: ":")
            put(msOfDay / 1000 % 60, 2, at: 17)
            out[19] = UInt8(ascii: ".")
            put(msOfDay % 1000, 3, at: 20)
            out[23] = UInt8(ascii: "Z")
            return 24
        }
    }

    /// The UTC day `YYYY-MM-DD` containing `ms`.
    public static func day(_ ms: Millis) -> String {
        let (y, m, d) = civil(fromDays: floorDiv(ms, 86_400_000))
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }

    /// Epoch milliseconds of the start of a UTC day `YYYY-MM-DD`; `nil` for anything else.
    public static func parseDay(_ text: String) -> Millis? {
        parse(text + "T00:00:00Z")
    }

    /// Epoch milliseconds of a UTC timestamp `YYYY-MM-DDTHH:MM:SS[.fff…]Z` as the API writes it;
    /// `nil` for anything else.
    public static func parse(_ text: String) -> Millis? {
        let b = Array(text.utf8)
        guard b.count >= 20, b.last == UInt8(ascii: "Z"), b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
            b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: " "), b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":")
        else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var v: Int64 = 0
            for i in range {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) else { return nil }
                v = v * 10 + Int64(b[i] - UInt8(ascii: "0"))
            }
            return v
        }
        guard let y = number(0..<4), let m = number(5..<7), let d = number(8..<10), let h = number(11..<13),
            let mi = number(14..<16), let s = number(17..<19), (1...12).contains(m), (1...31).contains(d), h < 24, mi < 60, s < 61
        else { return nil }
        var ms: Int64 = 0
        if b.count > 20 {
            guard b[19] == UInt8(ascii: "."), b.count > 21 else { return nil }
            // Milliseconds: the first three fraction digits, padded.
            let digits = b[20..<(b.count - 1)]
            guard digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
            for (k, digit) in digits.prefix(3).enumerated() { ms += Int64(digit - UInt8(ascii: "0")) * [100, 10, 1][k] }
        } else if b.count != 20 {
            return nil
        }
        return days(fromCivil: y, m, d) * 86_400_000 + h * 3_600_000 + mi * 60_000 + s * 1000 + ms
    }

    /// Howard Hinnant's days-from-civil.
    static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }

    /// Howard Hinnant's days-from-civil inverse.
    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
