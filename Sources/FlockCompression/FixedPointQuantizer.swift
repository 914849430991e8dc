/// Why an encoding or a decoding was refused.
public struct CodecError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A one-line message that says what to change.
    public let message: String

    /// Creates an error.
    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// The codec of secure aggregation until the compression codecs land: a weighted update in fixed point in
/// the ring Z_2^32, so that the server's modular sum of masked encodings is the encoding of the sum.
///
/// Weighting follows Flower's SecAgg+ (`secaggplus_mod`): an edge with n examples scales its update by
/// r = min(n, W) / W (W = ``maximumWeight``, carried in the plan) and appends r, so the server learns only
/// Σ r_j Δ_j and Σ r_j, whose quotient is FedAvg's example-weighted mean (exact while n_j ≤ W).
///
/// Wire format (`fixed32`): `length + 1` little-endian UInt32 words. Word i < length is
/// clamp(r Δ_i, ±clip) · scale as a two's-complement Int32, rounded stochastically (unbiased:
/// floor(x + u), u uniform in [0, 1) with 32 bits from a hash of the coordinate's index and the seed); the last word is round(r · weightScale). The scales leave room for
/// ``maximumSummands`` encodings to add up without wrapping: scale = ⌊(2^31 − 1) / (K · clip)⌋ and
/// weightScale = ⌊(2^31 − 1) / K⌋.
public struct FixedPointQuantizer: Sendable, Equatable {
    /// The codec's identifier in round plans and update headers.
    public static let identifier = "fixed32"

    /// Largest |r Δ_i| kept; larger values are clipped.
    public let clip: Float
    /// Example count at which an edge gets the full weight 1 (W).
    public let maximumWeight: Int
    /// Encodings that may be summed (K): the round's participants.
    public let maximumSummands: Int

    /// Creates a quantizer.
    /// - Throws: ``CodecError`` when a parameter is out of range.
    public init(clip: Float = 8, maximumWeight: Int, maximumSummands: Int) throws(CodecError) {
        guard clip.isFinite, clip > 0, clip <= 65_536 else { throw CodecError("fixed32: clip must be in (0, 65536], not \(clip)") }
        guard maximumWeight >= 1, maximumWeight <= 1 << 40 else { throw CodecError("fixed32: maximum weight must be 1 to 2^40 examples") }
        guard maximumSummands >= 1, Double(maximumSummands) * Double(clip) < Double(1 << 24) else {
            throw CodecError("fixed32: \(maximumSummands) summands of clip \(clip) leave fewer than 7 bits per unit in 32; lower the clip or the participants")
        }
        self.clip = clip
        self.maximumWeight = maximumWeight
        self.maximumSummands = maximumSummands
    }

    /// Units per 1.0 of a weighted coordinate.
    public var scale: Double { (Double(Int32.max) / (Double(maximumSummands) * Double(clip))).rounded(.down) }
    /// Units per 1.0 of weight.
    public var weightScale: Double { (Double(Int32.max) / Double(maximumSummands)).rounded(.down) }

    /// Words of the encoding of an update of `length` values.
    public static func encodedLength(_ length: Int) -> Int { length + 1 }

    /// The weight r = min(n, W) / W of an edge with `examples` examples.
    public func weight(examples: Int) -> Double { Self.weight(examples: examples, maximumWeight: maximumWeight) }

    /// The weight r = min(n, W) / W of an edge with n = `examples` examples when W = `maximumWeight` (Flower's
    /// `secaggplus_mod` weighting, shared by every ring codec).
    public static func weight(examples: Int, maximumWeight: Int) -> Double {
        Double(min(max(examples, 0), maximumWeight)) / Double(maximumWeight)
    }

    /// Encodes `delta` of an edge with `examples` examples, with stochastic rounding drawn from `seed`.
    /// - Throws: ``CodecError`` for no examples or a value that is not finite.
    public func encode(_ delta: [Float], examples: Int, seed: UInt64) throws(CodecError) -> [UInt32] {
        try delta.withUnsafeBufferPointer { d throws(CodecError) in
            try encode(count: d.count, examples: examples, seed: seed) { d[$0] }
        }
    }

    /// Encodes the update `local - global` (a locally trained model minus the global one it started from)
    /// without forming the difference first; see ``encode(_:examples:seed:)``.
    /// - Precondition: `local` and `global` have the same length.
    public func encode(
        local: UnsafeBufferPointer<Float>, minus global: UnsafeBufferPointer<Float>, examples: Int, seed: UInt64
    ) throws(CodecError) -> [UInt32] {
        precondition(local.count == global.count, "local and global models of different sizes")
        return try encode(count: local.count, examples: examples, seed: seed) { local[$0] - global[$0] }
    }

    @inline(__always)
    private func encode(count: Int, examples: Int, seed: UInt64, value: (Int) -> Float) throws(CodecError) -> [UInt32] {
        guard examples >= 1 else { throw CodecError("fixed32: an update needs at least 1 example") }
        guard count < 1 << 32 else { throw CodecError("fixed32: updates have fewer than 2^32 values") }
        // x * 0 is NaN exactly when x is NaN or infinite: one pass that vectorizes.
        var probe: Float = 0
        for i in 0..<count { probe += value(i) * 0 }
        guard probe == 0 else { throw CodecError("fixed32: the update holds NaN or infinite values (local training diverged; lower the learning rate)") }
        let r = weight(examples: examples)
        let factor = r * scale
        let limit = Double(clip) * scale
        let key = UInt32(truncatingIfNeeded: seed ^ (seed >> 32))
        return [UInt32](unsafeUninitializedCapacity: count + 1) { out, initialized in
            // floor(x + u), u uniform in [0, 1), rounds x up with probability frac(x): unbiased. It is computed
            // as x + (u - 1/2) rounded to nearest (equal but for ties, of probability 2^-32) by adding
            // 1.5 * 2^52, whose sum holds the rounded integer in its low mantissa bits (two's complement
            // modulo 2^32 for negative values). No rounding call, no conversion check: the loop vectorizes.
            let magic = 6_755_399_441_055_744.0
            for i in 0..<count {
                let x = Double(value(i)) * factor
                let clipped = x < -limit ? -limit : (x > limit ? limit : x)
                let u = Double(Self.mix(UInt32(truncatingIfNeeded: i) &+ key)) * 0x1p-32 - 0.5
                out[i] = UInt32(truncatingIfNeeded: (clipped + u + magic).bitPattern)
            }
            out[count] = UInt32(bitPattern: Int32((r * weightScale).rounded()))
            initialized = count + 1
        }
    }

    /// The rounding draw of one coordinate: MurmurHash3's 32-bit finalizer (Appleby), a bijection that
    /// spreads consecutive counters over all 32 bits.
    @inline(__always)
    static func mix(_ value: UInt32) -> UInt32 {
        var h = value
        h ^= h >> 16
        h &*= 0x85EB_CA6B
        h ^= h >> 13
        h &*= 0xC2B2_AE35
        h ^= h >> 16
        return h
    }

    /// Decodes the modular sum of encodings: the weighted mean Σ r_j Δ_j / Σ r_j and the total weight Σ r_j.
    /// - Throws: ``CodecError`` for a sum of no length or with no weight.
    public func decodeMean(sum words: [UInt32]) throws(CodecError) -> (mean: [Float], totalWeight: Double) {
        guard let last = words.last, words.count >= 2 else { throw CodecError("fixed32: a sum has at least 2 words") }
        let total = Double(Int32(bitPattern: last)) / weightScale
        guard total > 0 else { throw CodecError("fixed32: the sum carries no weight (no edge's update is in it)") }
        let inverse = 1 / (total * scale)
        let count = words.count - 1
        let mean = [Float](unsafeUninitializedCapacity: count) { out, initialized in
            for i in 0..<count { out[i] = Float(Double(Int32(bitPattern: words[i])) * inverse) }
            initialized = count
        }
        return (mean, total)
    }
}
