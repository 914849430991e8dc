/// A deterministic, seedable, serializable random number generator (xoshiro256**, Blackman & Vigna 2018),
/// seeded through SplitMix64.
///
/// Everything random in Flock (initialization, shuffling, dropout, partitioning) draws from one of these,
/// so that the same seed gives the same result on every machine, and a checkpoint can store ``state``
/// to resume the exact stream.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Codable, Equatable {
    /// The four 64-bit words of xoshiro256** state.
    public private(set) var state: [UInt64]

    /// Seeds the generator; the same seed always gives the same stream.
    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = [splitMix(), splitMix(), splitMix(), splitMix()]
    }

    /// Restores a generator from a saved ``state``.
    /// - Precondition: `state` has four words, not all zero.
    public init(state: [UInt64]) {
        precondition(state.count == 4 && state.contains { $0 != 0 }, "xoshiro256** needs four words, not all zero")
        self.state = state
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotl(state[3], 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A uniform Double in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A uniform integer in `0..<bound` without modulo bias (Lemire's method).
    public mutating func nextIndex(below bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        let b = UInt64(bound)
        var m = next().multipliedFullWidth(by: b)
        if m.low < b {
            let threshold = (0 &- b) % b
            while m.low < threshold { m = next().multipliedFullWidth(by: b) }
        }
        return Int(m.high)
    }

    /// A standard normal deviate (Box–Muller; one of the pair is discarded to keep the state simple).
    public mutating func nextNormal() -> Double {
        var u1 = nextUnit()
        while u1 <= .leastNonzeroMagnitude { u1 = nextUnit() }
        let u2 = nextUnit()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }

    /// A Gamma(shape, 1) deviate (Marsaglia & Tsang 2000; shape < 1 boosted by U^(1/shape)).
    /// - Precondition: `shape > 0`.
    public mutating func nextGamma(shape: Double) -> Double {
        precondition(shape > 0, "gamma shape must be positive")
        if shape < 1 {
            let boost = _pow(max(nextUnit(), .leastNonzeroMagnitude), 1 / shape)
            return nextGamma(shape: shape + 1) * boost
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double
            var v: Double
            repeat {
                x = nextNormal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = nextUnit()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if _log(max(u, .leastNonzeroMagnitude)) < 0.5 * x * x + d * (1 - v + _log(v)) { return d * v }
        }
    }

    /// Shuffles `array` in place (Fisher–Yates, our own so the order never depends on the standard library).
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            let j = nextIndex(below: i + 1)
            if i != j { array.swapAt(i, j) }
        }
    }

    /// A random permutation of `0..<count`.
    public mutating func permutation(_ count: Int) -> [Int] {
        var p = Array(0..<count)
        shuffle(&p)
        return p
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
@inline(__always) func _pow(_ x: Double, _ y: Double) -> Double { Glibc.pow(x, y) }
#else
import Foundation
@inline(__always) func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Foundation.cos(x) }
@inline(__always) func _pow(_ x: Double, _ y: Double) -> Double { Foundation.pow(x, y) }
#endif
