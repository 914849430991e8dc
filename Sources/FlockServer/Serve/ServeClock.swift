import Foundation

/// Where the coordinator reads the time: seconds since a fixed starting point, never going back.
///
/// Serving uses ``monotonic()``; tests pass a clock they advance by hand, so that deadlines and edge
/// timeouts do not depend on how loaded the machine is.
public struct ServeClock: Sendable {
    /// Seconds since the clock's starting point.
    public let seconds: @Sendable () -> Double

    /// A clock that reads `seconds`.
    public init(seconds: @escaping @Sendable () -> Double) {
        self.seconds = seconds
    }

    /// The process's monotonic clock, starting at zero now.
    public static func monotonic() -> ServeClock {
        let clock = ContinuousClock()
        let started = clock.now
        return ServeClock {
            let elapsed = clock.now - started
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        }
    }
}
