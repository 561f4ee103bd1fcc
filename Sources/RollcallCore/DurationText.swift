/// Durations as operators type them: `90d`, `12h`, `30m`, `45s`, `500ms`, `2w`.
public enum DurationText {
    /// Milliseconds, or `nil` when `text` is not a positive duration.
    public static func parseMillis(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000)]
        for (suffix, factor) in units.sorted(by: { $0.0.count > $1.0.count }) where text.hasSuffix(suffix) {
            guard let n = Int64(text.dropLast(suffix.count)), n > 0 else { return nil }
            let (product, overflow) = n.multipliedReportingOverflow(by: factor)
            return overflow ? nil : product
        }
        return nil
    }
}
