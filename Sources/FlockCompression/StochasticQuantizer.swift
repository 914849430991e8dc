/// The `q{b}` and `rot+q{b}` codecs: unbiased stochastic quantization of each value to one of 2^b evenly
/// spaced levels of its block's range [−s, s] (blocks of 1,024 values), optionally after a seeded randomized
/// Hadamard rotation (``RandomizedHadamard``). A value x in the range becomes digit ⌊(x + s)(2^b − 1)/2s + u⌋
/// with u uniform in [0, 1) from a hash of its index and the edge's seed, so E[decoded] = x; values outside
/// the range are clipped to it.
///
/// Two encodings:
/// - **One edge's payload** (no secure aggregation): the edge picks each block's range (the block's largest
///   |x|, so nothing is clipped) and sends it. Wire format, little-endian: UInt32 d (values), UInt8 b, UInt8
///   1 if rotated else 0, two zero bytes, one Float32 range per block, then the digits packed b bits at a
///   time (``MixedRadixPacking`` in base 2^b) into UInt32 words. The server decodes each payload.
/// - **Ring words** (secure aggregation, ``RingQuantizer``): every edge uses the ranges of the round plan,
///   so that the modular sum of encodings decodes to the sum of the updates.
public struct StochasticQuantizer: Sendable {
    /// Bits per value (b).
    public let bits: Int
    /// The rotation applied first, if any.
    public let rotation: RandomizedHadamard?
    /// Values of an update (d).
    public let length: Int

    /// Values per block of one range.
    public static let blockSize = RandomizedHadamard.blockSize

    /// A quantizer of updates of `length` values; `seed` draws the rotation (the same on every edge of a round).
    /// - Throws: ``CodecError`` for a bit width other than 1, 2, 4, 8, 16 or an empty update.
    public init(bits: Int, rotated: Bool, length: Int, seed: UInt64) throws(CodecError) {
        guard CodecSpec.quantizerBits.contains(bits) else { throw CodecError("q\(bits): quantizers take 1, 2, 4, 8 or 16 bits") }
        guard length >= 1, length < Int(Int32.max) else { throw CodecError("q\(bits): updates have 1 to 2^31 - 1 values") }
        self.bits = bits
        self.length = length
        rotation = rotated ? RandomizedHadamard(length: length, seed: seed) : nil
    }

    /// `q{b}` or `rot+q{b}`.
    public var identifier: String { CodecSpec.quantized(bits: bits, rotated: rotation != nil).identifier }
    /// Values quantized: d, or d padded to whole rotation blocks.
    public var quantizedLength: Int { rotation?.paddedLength ?? length }
    /// Blocks of one range each.
    public var blockCount: Int { (quantizedLength + Self.blockSize - 1) / Self.blockSize }
    /// The largest digit, 2^b − 1.
    public var topDigit: UInt32 { UInt32((1 << bits) - 1) }

    /// Quantizes `input` (``quantizedLength`` values) block by block: `range(block, values)` gives each
    /// block's range s, and its digits go to `digits`.
    /// - Returns: each block's range and Σ x² (not finite when a value is not).
    func quantize(
        into digits: UnsafeMutableBufferPointer<UInt32>, seed: UInt64, range: (Int, UnsafeBufferPointer<Float>) -> Float,
        input: UnsafeBufferPointer<Float>
    ) -> (ranges: [Float], squares: [Double]) {
        precondition(input.count == quantizedLength && digits.count == quantizedLength, "vectors of the wrong length")
        let top = Float(topDigit), limit = topDigit
        let key = UInt32(truncatingIfNeeded: seed ^ (seed >> 32))
        var ranges = [Float](repeating: 0, count: blockCount)
        var squares = [Double](repeating: 0, count: blockCount)
        for block in 0..<blockCount {
            let first = block * Self.blockSize
            let count = min(Self.blockSize, quantizedLength - first)
            let values = UnsafeBufferPointer(rebasing: input[first..<(first + count)])
            let s = range(block, values)
            let scale = s > 0 ? top / (2 * s) : 0
            let out = UnsafeMutableBufferPointer(rebasing: digits[first..<(first + count)])
            // ⌊t + u⌋ for t in [0, top] and u in [0, 1) from 24 hashed bits, computed as t + u − 1/2 rounded
            // to nearest by adding 1.5 · 2^23: the sum lies in [2^23, 2^24), where floats are the integers,
            // and its bit pattern minus that of 1.5 · 2^23 is the digit (equal but for ties of probability
            // 2^-24; draws resolve 2^-(24 − b) of a step). The loop vectorizes.
            let base = UInt32(truncatingIfNeeded: first) &+ key
            for j in 0..<count {
                let t = min(max((values[j] + s) * scale, 0), top)
                let u = Float(Int32(bitPattern: FixedPointQuantizer.mix(base &+ UInt32(truncatingIfNeeded: j)) >> 8)) * 0x1p-24 - 0.5
                // t + u is a float: at t = top it can round up to top + 1/2, which ties up to top + 1.
                out[j] = min((t + u + 0x1.8p23).bitPattern &- 0x4B40_0000, limit)
            }
            ranges[block] = s
            squares[block] = Self.sumOfSquares(values)
        }
        return (ranges, squares)
    }

    /// Σ x² over `values` in eight lanes (a sequential float sum would not vectorize).
    static func sumOfSquares(_ values: UnsafeBufferPointer<Float>) -> Double {
        var lanes = SIMD8<Float>()
        var j = 0
        let raw = UnsafeRawPointer(values.baseAddress!)
        while j + 8 <= values.count {
            let v = raw.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
            lanes += v * v
            j += 8
        }
        var total = Double(lanes.sum())
        while j < values.count {
            total += Double(values[j]) * Double(values[j])
            j += 1
        }
        return total
    }

    /// The vector that is quantized: `factor · (local − global)` (`global` nil: zero), rotated by a rotating
    /// codec. One pass over plain buffers, no per-value calls.
    /// - Precondition: `local` (and `global`) hold ``length`` values.
    func input(factor: Float, local: UnsafeBufferPointer<Float>, minus global: UnsafeBufferPointer<Float>?) -> [Float] {
        if let rotation { return rotation.rotate(factor: factor, local: local, minus: global) }
        return [Float](unsafeUninitializedCapacity: length) { out, initialized in
            if let global {
                for i in 0..<length { out[i] = (local[i] - global[i]) * factor }
            } else {
                for i in 0..<length { out[i] = local[i] * factor }
            }
            initialized = length
        }
    }

    // MARK: - One edge's payload

    /// Bytes of one edge's payload.
    public var payloadByteCount: Int {
        8 + 4 * blockCount + 4 * MixedRadixPacking(bits: bits).wordCount(digits: quantizedLength)
    }

    /// Encodes `delta` for sending without secure aggregation, with stochastic rounding drawn from `seed`.
    /// - Throws: ``CodecError`` for a wrong length or a value that is not finite.
    public func encodePayload(_ delta: [Float], seed: UInt64) throws(CodecError) -> [UInt8] {
        guard delta.count == length else { throw CodecError("\(identifier): the update has \(delta.count) values, the model \(length)") }
        var digits = [UInt32](repeating: 0, count: quantizedLength)
        let (ranges, squares) = delta.withUnsafeBufferPointer { d in
            let y = rotation == nil ? nil : input(factor: 1, local: d, minus: nil)
            return digits.withUnsafeMutableBufferPointer { digits in
                y.withOptionalBuffer { y in
                    quantize(into: digits, seed: seed, range: { _, block in block.reduce(0) { max($0, abs($1)) } }, input: y ?? d)
                }
            }
        }
        guard squares.allSatisfy(\.isFinite) else {
            throw CodecError("\(identifier): the update holds NaN or infinite values (local training diverged; lower the learning rate)")
        }
        let packed = digits.withUnsafeBufferPointer { MixedRadixPacking(bits: bits).pack($0) }
        var bytes = [UInt8]()
        bytes.reserveCapacity(payloadByteCount)
        Self.append(UInt32(length), to: &bytes)
        bytes += [UInt8(bits), rotation == nil ? 0 : 1, 0, 0]
        for r in ranges { Self.append(r.bitPattern, to: &bytes) }
        bytes += PlainCodec.bytes(of: packed)
        return bytes
    }

    /// Decodes one edge's payload.
    /// - Throws: ``CodecError`` for a payload of another codec, length or size, or a range that is negative or
    ///   not finite; nothing is decoded then.
    public func decodePayload(_ bytes: [UInt8]) throws(CodecError) -> [Float] {
        guard bytes.count == payloadByteCount else {
            throw CodecError("\(identifier): a payload of \(bytes.count) bytes; an update of \(length) values takes \(payloadByteCount)")
        }
        let header = Self.word(bytes, 0)
        guard header == UInt32(length), bytes[4] == UInt8(bits), bytes[5] == (rotation == nil ? 0 : 1), bytes[6] == 0, bytes[7] == 0 else {
            throw CodecError("\(identifier): the payload's header names another codec or length")
        }
        let ranges = (0..<blockCount).map { Float(bitPattern: Self.word(bytes, 8 + 4 * $0)) }
        guard ranges.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw CodecError("\(identifier): a block range is negative or not finite") }
        let start = 8 + 4 * blockCount
        let words = PlainCodec.words(of: Array(bytes[start...]))
        var sums = [Double](repeating: 0, count: quantizedLength)
        guard MixedRadixPacking(bits: bits).unpack(words[...], count: quantizedLength, { i, digit in sums[i] = Double(digit) }) else {
            throw CodecError("\(identifier): the payload's last word holds bits beyond its digits")
        }
        return values(digitSums: sums, ranges: ranges, summands: 1)
    }

    /// Σ x over `summands` encodings from their digit sums (in place of `sums`), rotated back.
    func values(digitSums sums: [Double], ranges: [Float], summands: Int) -> [Float] {
        var y = sums
        let top = Double(topDigit)
        for block in 0..<blockCount {
            let s = Double(ranges[block])
            let step = 2 * s / top, offset = Double(summands) * s
            for i in (block * Self.blockSize)..<min((block + 1) * Self.blockSize, y.count) { y[i] = y[i] * step - offset }
        }
        guard let rotation else { return y.map { Float($0) } }
        var x = [Float](repeating: 0, count: length)
        rotation.inverse(y, into: &x)
        return x
    }

    static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(truncatingIfNeeded: value), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 24)]
    }

    static func word(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
}

/// `q{b}` and `rot+q{b}` in the ring Z_2^32 of secure aggregation: every edge quantizes with the ranges of the
/// round plan, and the modular sum of the survivors' encodings decodes to their weighted mean update.
///
/// Weighting follows ``FixedPointQuantizer``: an edge with n examples quantizes x = r·Δ, r = min(n, W)/W,
/// and sends r. Ranges adapt from round to round: each edge also sends, per block, the mean square of its x
/// relative to the block's range, so the server learns the edges' average (never one edge's) and sets the
/// next round's range to ``rangeFactor`` root-mean-squares.
///
/// Wire format: ``wordCount`` little-endian UInt32 words: the digits in base M = K(2^b − 1) + 1 (K = the
/// round's participants, ``MixedRadixPacking``), then round(r · ⌊(2^32 − 1)/K⌋), then per block
/// round(min(v, cap) · 2^16) with v = mean (x/s)² over the block and cap = ⌊(2^32 − 1)/K⌋ / 2^16.
public struct RingQuantizer: Sendable {
    /// The quantizer.
    public let quantizer: StochasticQuantizer
    /// Range s of each block, the same on every edge of the round.
    public let ranges: [Float]
    /// Example count of full weight (W).
    public let maximumWeight: Int
    /// Encodings that may be summed (K).
    public let maximumSummands: Int
    /// How the digits pack.
    public let packing: MixedRadixPacking

    /// Next round's range of a block, in root-mean-squares of its values: more for finer quantizers, which
    /// can afford a wide range, fewer for coarse ones, whose rounding noise grows with the range.
    public var rangeFactor: Double {
        switch quantizer.bits {
        case 1: 2
        case 2: 2.5
        case 4: 3
        case 8: 8
        default: 32
        }
    }

    /// A ring encoder for a round.
    /// - Throws: ``CodecError`` when K summands of b bits do not fit 32 bits, or for a bad range or weight.
    public init(quantizer: StochasticQuantizer, ranges: [Float], maximumWeight: Int, maximumSummands: Int) throws(CodecError) {
        let id = quantizer.identifier
        guard ranges.count == quantizer.blockCount else { throw CodecError("\(id): \(ranges.count) ranges for \(quantizer.blockCount) blocks") }
        guard ranges.allSatisfy({ $0.isFinite && $0 > 0 }) else { throw CodecError("\(id): every block range must be positive and finite") }
        guard maximumWeight >= 1, maximumWeight <= 1 << 40 else { throw CodecError("\(id): maximum weight must be 1 to 2^40 examples") }
        let radix = UInt64(max(1, maximumSummands)) * UInt64(quantizer.topDigit) + 1
        guard maximumSummands >= 1, radix <= 1 << 32 else {
            let needed = 64 - (radix - 1).leadingZeroBitCount
            throw CodecError(
                "\(id): \(maximumSummands) summands of \(quantizer.bits) bits need \(needed) bits per value; the ring has 32. "
                    + "Use fewer bits or fewer edges per round")
        }
        self.quantizer = quantizer
        self.ranges = ranges
        self.maximumWeight = maximumWeight
        self.maximumSummands = maximumSummands
        packing = try MixedRadixPacking(radix: radix)
    }

    /// Units per 1.0 of weight.
    var weightScale: Double { (Double(UInt32.max) / Double(maximumSummands)).rounded(.down) }
    /// Largest relative mean square a block reports.
    var calibrationCap: Double { weightScale / 65_536 }

    /// Words of one encoding.
    public var wordCount: Int { packing.wordCount(digits: quantizer.quantizedLength) + 1 + quantizer.blockCount }

    /// Encodes the update `local − global` of an edge with `examples` examples (rounding draws from `seed`).
    /// - Throws: ``CodecError`` for no examples, a wrong length or a value that is not finite.
    public func encode(local: UnsafeBufferPointer<Float>, minus global: UnsafeBufferPointer<Float>, examples: Int, seed: UInt64) throws(CodecError) -> [UInt32] {
        guard global.count == local.count else { throw CodecError("\(quantizer.identifier): the local and global models differ in length") }
        return try encode(local: local, minus: Optional(global), examples: examples, seed: seed)
    }

    /// Encodes `delta` of an edge with `examples` examples.
    /// - Throws: as ``encode(local:minus:examples:seed:)``.
    public func encode(_ delta: [Float], examples: Int, seed: UInt64) throws(CodecError) -> [UInt32] {
        try delta.withUnsafeBufferPointer { d throws(CodecError) in
            try encode(local: d, minus: nil, examples: examples, seed: seed)
        }
    }

    private func encode(local: UnsafeBufferPointer<Float>, minus global: UnsafeBufferPointer<Float>?, examples: Int, seed: UInt64) throws(CodecError) -> [UInt32] {
        let id = quantizer.identifier
        guard local.count == quantizer.length else { throw CodecError("\(id): the update has \(local.count) values, the model \(quantizer.length)") }
        guard examples >= 1 else { throw CodecError("\(id): an update needs at least 1 example") }
        let r = FixedPointQuantizer.weight(examples: examples, maximumWeight: maximumWeight)
        let factor = Float(r)
        var digits = [UInt32](repeating: 0, count: quantizer.quantizedLength)
        let ranges = self.ranges
        let input = quantizer.input(factor: factor, local: local, minus: global)
        let squares = digits.withUnsafeMutableBufferPointer { digits in
            input.withUnsafeBufferPointer { input in quantizer.quantize(into: digits, seed: seed, range: { block, _ in ranges[block] }, input: input) }.squares
        }
        guard squares.allSatisfy(\.isFinite) else {
            throw CodecError("\(id): the update holds NaN or infinite values (local training diverged; lower the learning rate)")
        }
        var words = digits.withUnsafeBufferPointer { packing.pack($0) }
        words.reserveCapacity(wordCount)
        words.append(UInt32((r * weightScale).rounded()))
        for block in 0..<quantizer.blockCount {
            let values = min(StochasticQuantizer.blockSize, quantizer.quantizedLength - block * StochasticQuantizer.blockSize)
            let s = Double(ranges[block])
            let relative = squares[block] / Double(values) / (s * s)
            words.append(UInt32((min(relative, calibrationCap) * 65_536).rounded()))
        }
        return words
    }

    /// What the sum of the survivors' encodings says.
    public struct Decoded: Sendable {
        /// The weighted mean update Σ r_j Δ_j / Σ r_j.
        public var mean: [Float]
        /// Σ r_j.
        public var totalWeight: Double
        /// The ranges for the next round, from the survivors' average mean squares.
        public var nextRanges: [Float]
    }

    /// Decodes the modular sum of `summands` encodings.
    /// - Throws: ``CodecError`` for a sum of the wrong length, no weight, or more summands than planned.
    public func decodeMean(sum words: [UInt32], summands: Int) throws(CodecError) -> Decoded {
        let id = quantizer.identifier
        guard words.count == wordCount else { throw CodecError("\(id): a sum of \(words.count) words; this round's encodings have \(wordCount)") }
        guard summands >= 1, summands <= maximumSummands else { throw CodecError("\(id): \(summands) summands; the plan allows 1-\(maximumSummands)") }
        let digitWords = packing.wordCount(digits: quantizer.quantizedLength)
        let total = Double(words[digitWords]) / weightScale
        guard total > 0 else { throw CodecError("\(id): the sum carries no weight (no edge's update is in it)") }
        var sums = [Double](repeating: 0, count: quantizer.quantizedLength)
        var overflow = false
        let limit = UInt64(summands) * UInt64(quantizer.topDigit)
        let clean = packing.unpack(words[0..<digitWords], count: quantizer.quantizedLength) { i, digit in
            if digit > limit { overflow = true }
            sums[i] = Double(digit)
        }
        if !clean { overflow = true }
        guard !overflow else { throw CodecError("\(id): a digit sum exceeds what \(summands) encodings can reach (a corrupt or mis-summed vector)") }
        var mean = quantizer.values(digitSums: sums, ranges: ranges, summands: summands)
        let inverse = Float(1 / total)
        for i in 0..<mean.count { mean[i] *= inverse }
        let next = (0..<quantizer.blockCount).map { block -> Float in
            let relative = Double(words[digitWords + 1 + block]) / 65_536 / Double(summands)
            let rms = Double(ranges[block]) * relative.squareRoot()
            return rms > 0 ? Float(max(rms * rangeFactor, 1e-12)) : ranges[block]
        }
        return Decoded(mean: mean, totalWeight: total, nextRanges: next)
    }
}

extension Optional where Wrapped == [Float] {
    /// Calls `body` with the array's buffer, or with nil.
    func withOptionalBuffer<R>(_ body: (UnsafeBufferPointer<Float>?) -> R) -> R {
        guard let array = self else { return body(nil) }
        return array.withUnsafeBufferPointer { body($0) }
    }
}
