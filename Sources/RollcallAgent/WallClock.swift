import FoundationEssentials

/// The agent's wall clock, used only for `sent_ms` (the server's skew report).
func wallClockMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
