import RollcallCore

/// Short texts for the table's cells.
public enum Format {
    /// `42s`, `3m12s`, `2h05m`, `3d04h`: an age that fits in six columns.
    public static func age(_ ms: Millis) -> String {
        let s = max(0, ms) / 1000
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(two(s % 60))s" }
        if s < 86_400 { return "\(s / 3600)h\(two(s / 60 % 60))m" }
        return "\(s / 86_400)d\(two(s / 3600 % 24))h"
    }

    /// Like ``age(_:)`` with tenths under ten seconds: `0.4s`, `9.9s`.
    public static func recent(_ ms: Millis) -> String {
        let ms = max(0, ms)
        if ms < 10_000 { return "\(ms / 1000).\(ms / 100 % 10)s" }
        return age(ms)
    }

    /// `0.21ms`, `12.3ms`, `1.20s`.
    public static func rtt(_ ms: Double?) -> String {
        guard let ms, ms.isFinite, ms >= 0 else { return "–" }
        if ms < 10 { return fixed(ms, 2) + "ms" }
        if ms < 1000 { return fixed(ms, 1) + "ms" }
        return fixed(ms / 1000, 2) + "s"
    }

    /// `99.98%`; `–` when nothing was observed.
    public static func percent(_ ratio: Double?) -> String {
        guard let ratio, ratio.isFinite else { return "–" }
        return fixed(ratio * 100, 2) + "%"
    }

    /// `HH:MM:SS` in UTC.
    public static func clock(_ ms: Millis) -> String {
        String(Timestamp.rfc3339(ms).dropFirst(11).prefix(8))
    }

    /// `MM-DD HH:MM:SS` in UTC.
    public static func dateTime(_ ms: Millis) -> String {
        let t = Timestamp.rfc3339(ms)
        return String(t.dropFirst(5).prefix(5)) + " " + String(t.dropFirst(11).prefix(8))
    }

    /// `n` with `digits` decimals, without Foundation.
    public static func fixed(_ value: Double, _ digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = Int64((value * scale).rounded())
        let whole = scaled / Int64(scale)
        var fraction = String(abs(scaled % Int64(scale)))
        while fraction.count < digits { fraction = "0" + fraction }
        let sign = value < 0 && scaled != 0 && whole == 0 ? "-" : ""
        return digits == 0 ? "\(whole)" : "\(sign)\(whole).\(fraction)"
    }

    static func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
}
