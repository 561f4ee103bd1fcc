import Foundation
import RollcallCore
import Synchronization

/// The server's time source for liveness: monotonic, in Unix-epoch milliseconds.
public protocol PresenceClock: Sendable {
    func now() -> Millis
}

/// Reads `ContinuousClock` and anchors it to the wall clock once, at creation, so stored times are
/// epoch milliseconds that never jump when NTP adjusts the wall clock.
public struct SystemPresenceClock: PresenceClock {
    let anchorWall: Millis
    let anchorInstant: ContinuousClock.Instant

    public init() {
        self.anchorInstant = ContinuousClock.now
        self.anchorWall = Millis((Date().timeIntervalSince1970 * 1000).rounded())
    }

    public func now() -> Millis {
        let elapsed = ContinuousClock.now - anchorInstant
        let (seconds, attoseconds) = elapsed.components
        return anchorWall + seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// A clock that moves only when told to: tests advance it and then drive the sweep by hand.
public final class ManualPresenceClock: PresenceClock {
    private let current: Mutex<Millis>

    public init(_ start: Millis = 1_764_000_000_000) { self.current = Mutex(start) }

    public func now() -> Millis { current.withLock { $0 } }

    public func advance(by ms: Millis) { current.withLock { $0 += ms } }
}
