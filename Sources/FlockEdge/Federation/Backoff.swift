/// An exponential backoff with jitter, as a value: each ``next(unit:)`` gives the wait before the next attempt,
/// between half and all of the current step, and doubles the step up to ``maximum``.
///
/// The edge keeps two: one for a server that cannot be reached, one for a session the server ended (another
/// process registering under the same id takes the session over; without a backoff the two would take it back
/// from each other as fast as the network allows).
public struct Backoff: Sendable, Equatable {
    /// The first step, in seconds.
    public let initial: Double
    /// The largest step, in seconds.
    public let maximum: Double
    /// The step the next wait is drawn from, in seconds.
    public private(set) var step: Double

    /// A backoff whose steps run `initial`, `2 × initial`, … up to `maximum` seconds (at least `initial`).
    public init(initial: Double, maximum: Double) {
        precondition(initial > 0, "a backoff's first step must be positive")
        self.initial = initial
        self.maximum = Swift.max(initial, maximum)
        step = initial
    }

    /// The next wait: `step × (0.5 + unit / 2)` for `unit` in [0, 1) (the jitter), so never more than ``maximum``;
    /// then the step doubles, up to ``maximum``.
    public mutating func next(unit: Double) -> Double {
        let jittered = step * (0.5 + 0.5 * min(max(unit, 0), 1))
        step = min(maximum, step * 2)
        return jittered
    }

    /// Back to the first step (after a success).
    public mutating func reset() { step = initial }
}
