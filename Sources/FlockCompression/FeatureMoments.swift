import FlockCore

/// The feature statistics of a federation's training rows, gathered without any edge revealing its own: each
/// edge encodes its row count and per-feature sums and sums of squares as integers whose sum over the edges in
/// Z_2^32 (what secure aggregation delivers) decodes exactly to the federation's totals, from which the server
/// fits a per-feature standardization.
///
/// Each value is a signed fixed-point number with 32 fractional bits, held in 96 bits and split into six
/// 16-bit limbs, one limb per 32-bit word. Summing the words of at most 65,535 edges never carries out of a
/// word (each limb is below 2^16), and the sum of the limbs puts the carries back. One edge's sums may be as
/// large as 2^47 (about 1.4 · 10^14) and are resolved to 2^-32, so both raw pixel values and features of
/// size 10^-3 keep their deviation.
///
/// What the server learns is exactly what a standardization needs: the total row count and, per feature, the
/// total sum and sum of squares, never one edge's.
public struct FeatureMoments: Sendable, Equatable {
    /// The identifier a round plan carries for this encoding.
    public static let identifier = "moments"
    /// Most edges whose encodings may be summed.
    public static let maximumSummands = 65_535
    /// Largest magnitude of one edge's sum (count, sum or sum of squares of a feature).
    public static let largestValue = 140_737_488_355_328.0  // 2^47
    static let limbs = 6
    static let fractionBits = 32

    /// Features per row.
    public let features: Int

    /// The encoding of rows with `features` features.
    /// - Throws: ``CodecError`` for a feature count outside 1-16,777,216.
    public init(features: Int) throws(CodecError) {
        guard features >= 1, features <= 1 << 24 else { throw CodecError("feature moments need 1 to 16777216 features, not \(features)") }
        self.features = features
    }

    /// Words of one encoding: six for each of the count, the `features` sums and the `features` sums of squares.
    public var wordCount: Int { Self.limbs * (1 + 2 * features) }

    /// The encoding of `rows` as they are (unscaled).
    /// - Throws: ``CodecError`` for rows of another width, or sums too large to encode (a feature beyond about
    ///   10^7 in magnitude over 10^6 rows).
    /// - Complexity: O(`rows.count` × `features`).
    public func encode(_ rows: Dataset) throws(CodecError) -> [UInt32] {
        guard rows.featureCount == features else {
            throw CodecError("rows have \(rows.featureCount) features but the moments are of \(features)")
        }
        var sums = [Double](repeating: 0, count: features)
        var squares = [Double](repeating: 0, count: features)
        rows.features.withUnsafeBufferPointer { values in
            for row in 0..<rows.count {
                let base = row * features
                for j in 0..<features {
                    let x = Double(values[base + j])
                    sums[j] += x
                    squares[j] += x * x
                }
            }
        }
        var words = [UInt32]()
        words.reserveCapacity(wordCount)
        for value in [Double(rows.count)] + sums + squares {
            guard value.isFinite, abs(value) < Self.largestValue else {
                throw CodecError("a feature sum of \(value) is too large to encode (at most 2^47); scale the rows down first")
            }
            Self.appendLimbs(of: value, to: &words)
        }
        return words
    }

    /// The federation's totals, decoded from the sum of the edges' encodings.
    public struct Totals: Sendable, Equatable {
        /// Rows over all edges.
        public var count: Double
        /// Per feature: the sum over all rows.
        public var sums: [Double]
        /// Per feature: the sum of squares over all rows.
        public var squares: [Double]

        /// The standardization these totals define: per-feature mean and population deviation; a deviation of
        /// 0 (a constant feature) becomes 1, as ``FeatureScaling/fit(_:to:)`` does centrally.
        public var standardization: FeatureScaling {
            let n = max(count, 1)
            let mean = sums.map { $0 / n }
            let deviation = zip(squares, mean).map { square, m -> Float in
                let value = Float(max(0, square / n - m * m).squareRoot())
                return value > 0 && value.isFinite ? value : 1
            }
            return .standardize(mean: mean.map { Float($0) }, deviation: deviation)
        }
    }

    /// Decodes the sum (in Z_2^32, word by word) of at most ``maximumSummands`` encodings.
    /// - Throws: ``CodecError`` for a sum of the wrong length or one that holds no rows.
    public func decode(sum words: [UInt32]) throws(CodecError) -> Totals {
        guard words.count == wordCount else { throw CodecError("a moments sum has \(words.count) words; \(wordCount) expected") }
        var values = [Double]()
        values.reserveCapacity(1 + 2 * features)
        for start in stride(from: 0, to: words.count, by: Self.limbs) {
            values.append(Self.value(of: words[start..<start + Self.limbs]))
        }
        let count = values[0].rounded()
        guard count >= 1 else { throw CodecError("the moments sum holds \(count) rows; no edge sent rows") }
        return Totals(count: count, sums: Array(values[1...features]), squares: Array(values[(features + 1)...]))
    }

    /// Appends the six 16-bit limbs of `value` in 96-bit two's complement fixed point.
    private static func appendLimbs(of value: Double, to words: inout [UInt32]) {
        let fixed = Int128((value * Double(1 << fractionBits)).rounded())
        let bits = UInt128(bitPattern: fixed)
        for limb in 0..<limbs { words.append(UInt32(truncatingIfNeeded: bits >> (16 * limb)) & 0xFFFF) }
    }

    /// The value of six summed limbs: their weighted sum modulo 2^96, sign-extended.
    private static func value(of limbs: ArraySlice<UInt32>) -> Double {
        var total: UInt128 = 0
        for (k, word) in limbs.enumerated() { total &+= UInt128(word) << (16 * k) }
        let width = 16 * self.limbs
        total &= (UInt128(1) << width) - 1
        let signed = Int128(bitPattern: total << (128 - width)) >> (128 - width)
        return Double(signed) / Double(1 << fractionBits)
    }
}
