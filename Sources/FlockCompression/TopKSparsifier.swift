import Synchronization

/// The `topk:F` codec: an edge sends only the k = ⌈F·d⌉ values of largest magnitude, for rounds without
/// secure aggregation (every edge picks different coordinates, so masked sums could not be decoded).
///
/// Wire format, little-endian: UInt32 d, UInt32 k (its top bit set when the values are signs), the values,
/// then the k indices in increasing order as LEB128 varints of their gaps (the first index itself, then
/// each index minus the previous one minus one). Values are k Float32, or with `values=sign` (sparse
/// ternary compression, Sattler et al. 2019) one Float32 μ, the mean magnitude of the kept values, and
/// ⌈k/8⌉ bytes of sign bits (1 = negative), each value decoding to ±μ. The decoder refuses another d, k
/// above d, values that are not finite, indices out of order or out of range, and bytes left over or
/// missing.
public struct TopKSparsifier: Sendable, Equatable {
    /// Values of an update (d).
    public let length: Int
    /// Share of the values sent once warm-up is over.
    public let fraction: Double
    /// Whether values travel as signs of one mean magnitude.
    public let signs: Bool

    /// A sparsifier of updates of `length` values keeping `fraction` of them, as floats or as `signs`.
    /// - Throws: ``CodecError`` for a fraction outside (0, 1] or an empty update.
    public init(length: Int, fraction: Double, signs: Bool = false) throws(CodecError) {
        guard fraction > 0, fraction <= 1 else { throw CodecError("topk: the kept fraction must be in (0, 1], not \(fraction)") }
        guard length >= 1, length < Int(Int32.max) else { throw CodecError("topk: updates have 1 to 2^31 - 2 values") }
        self.length = length
        self.fraction = fraction
        self.signs = signs
    }

    /// What the receiver gets for the kept value `x` whose kept values have mean magnitude `mean`.
    @inline(__always)
    func sent(_ x: Float, mean: Float) -> Float { signs ? (x < 0 ? -mean : mean) : x }

    /// Values kept at `fraction` (at least 1).
    public func keptCount(fraction: Double) -> Int { min(length, max(1, Int((fraction * Double(length)).rounded(.up)))) }

    /// The payload of the `k` values of `v` of largest magnitude, their indices (increasing) and what the
    /// receiver decodes for each (the value, or ±μ).
    /// - Throws: ``CodecError`` for a wrong length or a value that is not finite.
    public func encode(_ v: [Float], keeping k: Int) throws(CodecError) -> (payload: [UInt8], indices: [Int], sent: [Float]) {
        guard v.count == length else { throw CodecError("topk: the update has \(v.count) values, the model \(length)") }
        guard v.allSatisfy(\.isFinite) else { throw CodecError("topk: the update holds NaN or infinite values (local training diverged; lower the learning rate)") }
        let k = min(max(k, 1), length)
        let threshold = Self.kthLargestMagnitude(v, k: k)
        var indices = [Int]()
        indices.reserveCapacity(k)
        // Every value above the threshold, then values equal to it until k are taken.
        for i in 0..<length where abs(v[i]) > threshold { indices.append(i) }
        if indices.count < k {
            var ties = [Int]()
            for i in 0..<length where abs(v[i]) == threshold { ties.append(i) }
            indices = (indices + ties.prefix(k - indices.count)).sorted()
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(8 + 6 * k)
        StochasticQuantizer.append(UInt32(length), to: &bytes)
        StochasticQuantizer.append(UInt32(indices.count) | (signs ? 0x8000_0000 : 0), to: &bytes)
        let mean = Float(indices.reduce(0.0) { $0 + Double(abs(v[$1])) } / Double(indices.count))
        if signs {
            StochasticQuantizer.append(mean.bitPattern, to: &bytes)
            var bits = [UInt8](repeating: 0, count: (indices.count + 7) / 8)
            for (n, i) in indices.enumerated() where v[i] < 0 { bits[n / 8] |= 1 << UInt8(n % 8) }
            bytes += bits
        } else {
            bytes += PlainCodec.bytes(of: indices.map { v[$0].bitPattern })
        }
        var previous = -1
        for i in indices {
            var gap = UInt32(i - previous - 1)
            previous = i
            while gap >= 0x80 {
                bytes.append(UInt8(gap & 0x7F) | 0x80)
                gap >>= 7
            }
            bytes.append(UInt8(gap))
        }
        return (bytes, indices, indices.map { sent(v[$0], mean: mean) })
    }

    /// The dense update a payload carries (zeros where nothing was sent).
    /// - Throws: ``CodecError`` naming what is malformed; nothing is decoded then.
    public func decode(_ bytes: [UInt8]) throws(CodecError) -> [Float] {
        guard bytes.count >= 8 else { throw CodecError("topk: a payload of \(bytes.count) bytes is shorter than its 8-byte header") }
        guard Int(StochasticQuantizer.word(bytes, 0)) == length else { throw CodecError("topk: the payload is for another model length") }
        let header = StochasticQuantizer.word(bytes, 4)
        guard (header & 0x8000_0000 != 0) == signs else { throw CodecError("topk: the payload's values are \(signs ? "floats" : "signs"); this round sends \(signs ? "signs" : "floats")") }
        let k = Int(header & 0x7FFF_FFFF)
        let valueBytes = signs ? 4 + (k + 7) / 8 : 4 * k
        guard k >= 1, k <= length, bytes.count >= 8 + valueBytes + k else { throw CodecError("topk: \(k) values do not fit a payload of \(bytes.count) bytes for \(length) values") }
        let values: [Float]
        if signs {
            let mean = Float(bitPattern: StochasticQuantizer.word(bytes, 8))
            values = (0..<k).map { n in bytes[12 + n / 8] & (1 << UInt8(n % 8)) != 0 ? -mean : mean }
        } else {
            values = PlainCodec.words(of: Array(bytes[8..<(8 + 4 * k)])).map { Float(bitPattern: $0) }
        }
        guard values.allSatisfy(\.isFinite) else { throw CodecError("topk: the payload holds NaN or infinite values") }
        var out = [Float](repeating: 0, count: length)
        var at = 8 + valueBytes
        var previous = -1
        for value in values {
            var gap: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard at < bytes.count, shift < 35 else { throw CodecError("topk: the payload's indices are truncated or malformed") }
                let byte = bytes[at]
                at += 1
                gap |= UInt64(byte & 0x7F) << shift
                shift += 7
                if byte & 0x80 == 0 { break }
            }
            let index = previous + 1 + Int(gap)
            guard index < length else { throw CodecError("topk: an index beyond the model's \(length) values") }
            out[index] = value
            previous = index
        }
        guard at == bytes.count else { throw CodecError("topk: \(bytes.count - at) bytes left over after the indices") }
        return out
    }

    /// The k-th largest |v_i| (quickselect on a copy of the magnitudes, expected linear time), 1 ≤ k ≤ v.count.
    public static func kthLargestMagnitude(_ v: [Float], k: Int) -> Float {
        var m = v.map { abs($0) }
        var low = 0, high = m.count - 1
        let target = k - 1  // position in descending order
        var rng = SplitMix64(seed: UInt64(m.count) &* 0x9E37 &+ UInt64(k))
        while low < high {
            let pivot = m[low + Int(rng.next() % UInt64(high - low + 1))]
            var i = low, j = high
            while i <= j {
                while m[i] > pivot { i += 1 }
                while m[j] < pivot { j -= 1 }
                if i <= j {
                    m.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if target <= j {
                high = j
            } else if target >= i {
                low = i
            } else {
                return m[target]
            }
        }
        return m[target]
    }
}

/// The edge's side of `topk` (Deep Gradient Compression, Lin et al. 2018): what was not sent is kept and
/// added to the next update (error feedback), with momentum correction (the momentum u = m·u + Δ is
/// accumulated, not Δ alone, and both are cleared where values were sent: momentum factor masking) and a
/// warm-up that keeps 25%, 6.25%, … of the values in an edge's first participations before the target
/// fraction.
public struct ErrorFeedback: Sendable {
    /// Accumulated values not yet sent (v).
    public private(set) var residual: [Float]
    /// Momentum (u).
    public private(set) var momentum: [Float]
    /// Rounds this edge has sent in.
    public private(set) var participations = 0

    /// Empty state for updates of `length` values.
    public init(length: Int) {
        residual = [Float](repeating: 0, count: length)
        momentum = [Float](repeating: 0, count: length)
    }

    /// Saved state.
    /// - Throws: ``CodecError`` when the vectors differ in length, hold values that are not finite, or the
    ///   count is negative.
    public init(residual: [Float], momentum: [Float], participations: Int) throws(CodecError) {
        guard residual.count == momentum.count, participations >= 0, residual.allSatisfy(\.isFinite), momentum.allSatisfy(\.isFinite) else {
            throw CodecError("topk: a saved error-feedback state that does not hold together")
        }
        self.residual = residual
        self.momentum = momentum
        self.participations = participations
    }

    /// The fraction kept in this participation: 4^-(p+1) during the first `warmUp` participations (but never
    /// below the target), then the target.
    public func fraction(target: Double, warmUp: Int) -> Double {
        guard participations < warmUp else { return target }
        return max(target, pow4(-(participations + 1)))
    }

    private func pow4(_ e: Int) -> Double {
        var x = 1.0
        for _ in 0..<(-e) { x /= 4 }
        return x
    }

    /// Folds `delta` into the state, encodes the top values, and clears what was sent.
    /// - Throws: ``CodecError`` for a wrong length or values that are not finite.
    public mutating func encode(_ delta: [Float], with codec: TopKSparsifier, momentum m: Float, warmUp: Int) throws(CodecError) -> [UInt8] {
        guard delta.count == residual.count else { throw CodecError("topk: the update has \(delta.count) values, the state \(residual.count)") }
        var u = momentum, v = residual
        for i in 0..<delta.count {
            u[i] = m * u[i] + delta[i]
            v[i] += u[i]
        }
        let (payload, indices, sent) = try codec.encode(v, keeping: codec.keptCount(fraction: fraction(target: codec.fraction, warmUp: warmUp)))
        // What was sent leaves the residual (all of it for float values; with signs, the rest of each value
        // stays); momentum is cleared where values were sent (momentum factor masking).
        for (i, value) in zip(indices, sent) {
            v[i] -= value
            u[i] = 0
        }
        momentum = u
        residual = v
        participations += 1
        return payload
    }
}

/// Error-feedback states of many edges (or of one edge across rounds), keyed by edge, shared by threads: a
/// caller takes a state out while it encodes and puts it back after, so no two encodings share one.
public final class ErrorFeedbackStore<Key: Hashable & Sendable>: Sendable {
    private let states = Mutex<[Key: ErrorFeedback]>([:])

    /// An empty store.
    public init() {}

    /// Removes and returns `key`'s state, if there is one.
    public func take(_ key: Key) -> ErrorFeedback? { states.withLock { $0.removeValue(forKey: key) } }

    /// Stores `key`'s state.
    public func put(_ state: ErrorFeedback, for key: Key) { states.withLock { $0[key] = state } }

    /// `key`'s state, left in the store.
    public func state(of key: Key) -> ErrorFeedback? { states.withLock { $0[key] } }

    /// Every stored state.
    public var all: [Key: ErrorFeedback] { states.withLock { $0 } }
}
