/// An update codec named in a round plan, on the command line (`--codec`) and in update headers.
///
/// | identifier | what it sends | under secure aggregation |
/// | --- | --- | --- |
/// | `f32` | every value as a little-endian float (the baseline) | no: not a ring encoding |
/// | `fixed32` | every value in fixed point in Z_2^32 (``FixedPointQuantizer``) | yes |
/// | `q{b}` | b-bit stochastic quantization with a range per block of 1,024 values (``StochasticQuantizer``) | yes |
/// | `rot+q{b}` | the same after a seeded randomized Hadamard rotation (``RandomizedHadamard``) | yes |
/// | `sketch:{rows}x{cols}[,q{b}][,k=K]` | a count sketch whose cells travel as `q{b}` (default q8); the server recovers K heavy coordinates (FetchSGD, Rothchild et al. 2020; ``CountSketch``) | yes |
/// | `topk:{fraction}[,momentum=M][,warmup=W]` | the largest values with error feedback, momentum correction and warm-up (DGC, Lin et al. 2018; ``TopKSparsifier``) | no: not linear |
/// | `{codec}+deflate` | any codec above that runs without secure aggregation, its payload through a zlib stream when that is smaller (``LosslessStage``) | no: masked words do not shrink |
///
/// b is 1, 2, 4, 8 or 16.
public enum CodecSpec: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Uncompressed float32.
    case f32
    /// Fixed point in Z_2^32.
    case fixed32
    /// b-bit stochastic quantization, optionally after a randomized Hadamard rotation.
    case quantized(bits: Int, rotated: Bool)
    /// A count sketch of `rows` × `columns` cells, each quantized to `cellBits`; the server applies the `k`
    /// heaviest coordinates a round (nil: a quarter of the columns).
    case sketch(rows: Int, columns: Int, cellBits: Int = 8, k: Int? = nil)
    /// Top-k sparsification keeping `fraction` of the values, with momentum correction `momentum` and a
    /// warm-up over an edge's first `warmUp` participations.
    case topK(fraction: Double, momentum: Double = 0, warmUp: Int = 0, signs: Bool = false)
    /// Another codec's payload through the lossless stage (``LosslessStage``).
    indirect case deflated(CodecSpec)

    /// Bit widths `q{b}` accepts.
    public static let quantizerBits = [1, 2, 4, 8, 16]

    /// Every form `--codec` accepts, for error messages and help.
    public static let forms = "f32, fixed32, q{1,2,4,8,16}, rot+q{1,2,4,8,16}, sketch:ROWSxCOLS[,q{b}][,k=K], topk:FRACTION[,momentum=M][,warmup=W][,values=sign], and any of them without secure aggregation +deflate"

    /// The suffix that adds the lossless stage.
    static let losslessSuffix = "+deflate"

    /// Parses an identifier such as `q8`, `rot+q4`, `sketch:5x20000` or `topk:0.001`.
    /// - Throws: ``CodecError`` naming the accepted forms.
    public init(parsing text: String) throws(CodecError) {
        let bad = CodecError("codec '\(text)': use one of \(Self.forms)")
        if text.hasSuffix(Self.losslessSuffix) {
            let inner = try CodecSpec(parsing: String(text.dropLast(Self.losslessSuffix.count)))
            if case .deflated = inner { throw CodecError("codec '\(text)': one lossless stage is enough") }
            self = .deflated(inner)
            return
        }
        switch text {
        case "f32": self = .f32
        case "fixed32": self = .fixed32
        default:
            if text.hasPrefix("q") || text.hasPrefix("rot+q") {
                let rotated = text.hasPrefix("rot+")
                guard let bits = Int(text.dropFirst(rotated ? 5 : 1)) else { throw bad }
                guard Self.quantizerBits.contains(bits) else {
                    throw CodecError("codec '\(text)': quantizers take 1, 2, 4, 8 or 16 bits, not \(bits)")
                }
                self = .quantized(bits: bits, rotated: rotated)
            } else if text.hasPrefix("sketch:") {
                let parts = text.dropFirst(7).split(separator: ",", omittingEmptySubsequences: false)
                let size = parts[0].split(separator: "x", omittingEmptySubsequences: false)
                guard size.count == 2, let rows = Int(size[0]), let columns = Int(size[1]) else { throw bad }
                guard (1...32).contains(rows), (1...(1 << 24)).contains(columns) else {
                    throw CodecError("codec '\(text)': a sketch has 1-32 rows and 1-16777216 columns")
                }
                var cellBits = 8
                var k: Int?
                for option in parts.dropFirst() {
                    if option.hasPrefix("q"), let bits = Int(option.dropFirst()), Self.quantizerBits.contains(bits) {
                        cellBits = bits
                    } else if option.hasPrefix("k="), let heavy = Int(option.dropFirst(2)), heavy >= 1 {
                        k = heavy
                    } else {
                        throw CodecError("codec '\(text)': a sketch takes q{1,2,4,8,16} (its cells' quantizer) and k=K (coordinates applied a round)")
                    }
                }
                self = .sketch(rows: rows, columns: columns, cellBits: cellBits, k: k)
            } else if text.hasPrefix("topk:") {
                let parts = text.dropFirst(5).split(separator: ",", omittingEmptySubsequences: false)
                guard let fraction = Double(parts[0]) else { throw bad }
                guard fraction > 0, fraction <= 1 else { throw CodecError("codec '\(text)': the kept fraction must be in (0, 1]") }
                var momentum = 0.0, warmUp = 0, signs = false
                for option in parts.dropFirst() {
                    if option.hasPrefix("momentum="), let m = Double(option.dropFirst(9)), m >= 0, m < 1 {
                        momentum = m
                    } else if option.hasPrefix("warmup="), let w = Int(option.dropFirst(7)), (0...20).contains(w) {
                        warmUp = w
                    } else if option == "values=sign" || option == "values=f32" {
                        signs = option == "values=sign"
                    } else {
                        throw CodecError(
                            "codec '\(text)': topk takes momentum=M (0 <= M < 1), warmup=W (0-20 participations) and values=f32|sign")
                    }
                }
                self = .topK(fraction: fraction, momentum: momentum, warmUp: warmUp, signs: signs)
            } else {
                throw bad
            }
        }
    }

    /// The identifier, as parsed.
    public var identifier: String {
        switch self {
        case .f32: "f32"
        case .fixed32: "fixed32"
        case .quantized(let bits, let rotated): (rotated ? "rot+q" : "q") + String(bits)
        case .sketch(let rows, let columns, let cellBits, let k):
            "sketch:\(rows)x\(columns)" + (cellBits == 8 ? "" : ",q\(cellBits)") + (k.map { ",k=\($0)" } ?? "")
        case .topK(let fraction, let momentum, let warmUp, let signs):
            "topk:\(fraction)" + (momentum > 0 ? ",momentum=\(momentum)" : "") + (warmUp > 0 ? ",warmup=\(warmUp)" : "")
                + (signs ? ",values=sign" : "")
        case .deflated(let inner): inner.identifier + Self.losslessSuffix
        }
    }

    /// The identifier.
    public var description: String { identifier }

    /// The codec without its lossless stage (itself when it has none).
    public var withoutLosslessStage: CodecSpec {
        if case .deflated(let inner) = self { return inner }
        return self
    }

    /// Whether sums of encodings in Z_2^32 decode to the sum of the updates, as secure aggregation needs.
    public var isLinearInTheRing: Bool {
        switch self {
        case .fixed32, .quantized, .sketch: true
        case .f32, .topK, .deflated: false
        }
    }

    /// Refuses, up front, a codec that cannot run with the round's secure-aggregation setting or that is not
    /// available yet.
    /// - Throws: ``CodecError`` that says what to choose instead.
    public func check(secureAggregation: Bool) throws(CodecError) {
        switch self {
        case .topK:
            if secureAggregation {
                throw CodecError(
                    "codec '\(identifier)' cannot run under secure aggregation: top-k picks different coordinates on every edge, "
                        + "so masked sums cannot be decoded; use rot+q{b} or q{b}, or turn secure aggregation off")
            }
        case .f32:
            if secureAggregation {
                throw CodecError("codec 'f32' cannot run under secure aggregation (floats do not add up in Z_2^32); use fixed32, q{b} or rot+q{b}")
            }
        case .fixed32, .quantized, .sketch:
            break
        case .deflated(let inner):
            if secureAggregation {
                throw CodecError(
                    "codec '\(identifier)' cannot run under secure aggregation: masked words are uniformly random, so a lossless "
                        + "stage cannot shrink them; drop \(Self.losslessSuffix), or turn secure aggregation off")
            }
            try inner.check(secureAggregation: false)
        }
    }
}

/// A codec whose encodings add up in the ring Z_2^32, as secure aggregation needs: the round's encoder on the
/// edges and decoder of the unmasked sum on the server.
public enum RingCodec: Sendable {
    /// `fixed32`.
    case fixedPoint(FixedPointQuantizer)
    /// `q{b}` or `rot+q{b}` with the round's ranges.
    case quantized(RingQuantizer)
    /// `sketch`: the count sketch of the update, its cells quantized with the round's ranges; decoding gives
    /// the mean sketch, which ``FetchSGDState`` turns into an update.
    case sketched(CountSketch, RingQuantizer, k: Int)

    /// The round's ring codec for `spec` over updates of `length` values from `participants` edges, with full
    /// weight at `maximumWeight` examples. A quantizer takes the block `ranges` of the plan (nil: every
    /// block at `initialRange`) and draws its rotation from `seed`; `fixed32` clips at `clip`.
    /// - Throws: ``CodecError`` for a codec that is not linear in the ring, or parameters that do not fit.
    public init(
        _ spec: CodecSpec, length: Int, participants: Int, maximumWeight: Int, ranges: [Float]?, initialRange: Float = 0.01, seed: UInt64,
        clip: Float = 8
    ) throws(CodecError) {
        try spec.check(secureAggregation: true)
        switch spec {
        case .quantized(let bits, let rotated):
            let quantizer = try StochasticQuantizer(bits: bits, rotated: rotated, length: length, seed: seed ^ 0x0207_A7E5)
            let ranges = ranges ?? [Float](repeating: initialRange, count: quantizer.blockCount)
            self = .quantized(try RingQuantizer(quantizer: quantizer, ranges: ranges, maximumWeight: maximumWeight, maximumSummands: participants))
        case .sketch(let rows, let columns, let cellBits, let k):
            // The hashes stay the same from round to round, so that the server's sketches add up.
            let sketch = try CountSketch(rows: rows, columns: columns, length: length, seed: CountSketch.sharedSeed)
            let quantizer = try StochasticQuantizer(bits: cellBits, rotated: false, length: sketch.cellCount, seed: 0)
            let ranges = ranges ?? [Float](repeating: initialRange, count: quantizer.blockCount)
            self = .sketched(
                sketch, try RingQuantizer(quantizer: quantizer, ranges: ranges, maximumWeight: maximumWeight, maximumSummands: participants),
                k: k ?? max(1, columns / 4))
        default:
            self = .fixedPoint(try FixedPointQuantizer(clip: clip, maximumWeight: maximumWeight, maximumSummands: participants))
        }
    }

    /// A quantizer's block ranges (nil for `fixed32`), which the round plan carries.
    public var ranges: [Float]? {
        switch self {
        case .fixedPoint: nil
        case .quantized(let codec), .sketched(_, let codec, _): codec.ranges
        }
    }

    /// The codec's identifier.
    public var identifier: String {
        switch self {
        case .fixedPoint: FixedPointQuantizer.identifier
        case .quantized(let codec): codec.quantizer.identifier
        case .sketched(let sketch, let codec, let k):
            CodecSpec.sketch(rows: sketch.rows, columns: sketch.columns, cellBits: codec.quantizer.bits, k: k).identifier
        }
    }

    /// Words of one encoding of an update of `length` values.
    public func wordCount(length: Int) -> Int {
        switch self {
        case .fixedPoint: FixedPointQuantizer.encodedLength(length)
        case .quantized(let codec), .sketched(_, let codec, _): codec.wordCount
        }
    }

    /// Encodes `local − global` of an edge with `examples` examples.
    /// - Throws: ``CodecError`` for no examples, a wrong length or a value that is not finite.
    public func encode(local: UnsafeBufferPointer<Float>, minus global: UnsafeBufferPointer<Float>, examples: Int, seed: UInt64) throws(CodecError) -> [UInt32] {
        switch self {
        case .fixedPoint(let codec): try codec.encode(local: local, minus: global, examples: examples, seed: seed)
        case .quantized(let codec): try codec.encode(local: local, minus: global, examples: examples, seed: seed)
        case .sketched(let sketch, let codec, _):
            try codec.encode(sketch.sketch { local[$0] - global[$0] }, examples: examples, seed: seed)
        }
    }

    /// Encodes `delta` of an edge with `examples` examples.
    /// - Throws: as ``encode(local:minus:examples:seed:)``.
    public func encode(_ delta: [Float], examples: Int, seed: UInt64) throws(CodecError) -> [UInt32] {
        switch self {
        case .fixedPoint(let codec): try codec.encode(delta, examples: examples, seed: seed)
        case .quantized(let codec): try codec.encode(delta, examples: examples, seed: seed)
        case .sketched(let sketch, let codec, _): try codec.encode(sketch.sketch { delta[$0] }, examples: examples, seed: seed)
        }
    }

    /// Decodes the sum of `summands` encodings: the weighted mean update (for `sketch`, the weighted mean
    /// sketch, which ``FetchSGDState/step(meanSketch:)`` turns into an update), its total weight, and for
    /// the quantizers the next round's ranges.
    /// - Throws: ``CodecError`` for a malformed sum.
    public func decodeMean(sum: [UInt32], summands: Int) throws(CodecError) -> (mean: [Float], totalWeight: Double, nextRanges: [Float]?) {
        switch self {
        case .fixedPoint(let codec):
            let (mean, weight) = try codec.decodeMean(sum: sum)
            return (mean, weight, nil)
        case .quantized(let codec), .sketched(_, let codec, _):
            let decoded = try codec.decodeMean(sum: sum, summands: summands)
            return (decoded.mean, decoded.totalWeight, decoded.nextRanges)
        }
    }
}

/// A codec of one edge's update payload, for rounds without secure aggregation: the server decodes every
/// payload on its own.
public enum PlainCodec: Sendable {
    /// `f32`: 4 bytes per value, little-endian.
    case f32(length: Int)
    /// `fixed32` with one summand: 4 bytes per value plus the weight word.
    case fixedPoint(FixedPointQuantizer, length: Int)
    /// `q{b}` or `rot+q{b}` with the edge's own block ranges.
    case quantized(StochasticQuantizer)
    /// `topk`, with the edges' error-feedback state kept by the caller.
    case topK(TopKSparsifier, momentum: Float, warmUp: Int)
    /// `sketch`: the count sketch of the update, its cells in the `q{b}` payload format with their own
    /// ranges; decoding gives the sketch, which ``FetchSGDState`` turns into an update once summed.
    case sketched(CountSketch, StochasticQuantizer)
    /// Another plain codec's payload through the lossless stage.
    indirect case deflated(PlainCodec)

    /// The round's codec for updates of `length` values (`seed` draws a rotation).
    /// - Throws: ``CodecError`` for a codec that needs secure aggregation's ring or is not available yet.
    public init(_ spec: CodecSpec, length: Int, seed: UInt64) throws(CodecError) {
        try spec.check(secureAggregation: false)
        switch spec {
        case .f32: self = .f32(length: length)
        case .fixed32: self = .fixedPoint(try FixedPointQuantizer(maximumWeight: 1, maximumSummands: 1), length: length)
        case .quantized(let bits, let rotated):
            self = .quantized(try StochasticQuantizer(bits: bits, rotated: rotated, length: length, seed: seed ^ 0x0207_A7E5))
        case .topK(let fraction, let momentum, let warmUp, let signs):
            self = .topK(try TopKSparsifier(length: length, fraction: fraction, signs: signs), momentum: Float(momentum), warmUp: warmUp)
        case .sketch(let rows, let columns, let cellBits, _):
            // The hashes stay the same from round to round, so that the server's sketches add up.
            let sketch = try CountSketch(rows: rows, columns: columns, length: length, seed: CountSketch.sharedSeed)
            self = .sketched(sketch, try StochasticQuantizer(bits: cellBits, rotated: false, length: sketch.cellCount, seed: 0))
        case .deflated(let inner):
            self = .deflated(try PlainCodec(inner, length: length, seed: seed))
        }
    }

    /// The largest payload an edge may send (``payloadBytes`` but for `topk`, whose warm-up may keep a
    /// quarter of the values and whose index gaps take up to 5 bytes each).
    public var maximumPayloadBytes: Int {
        switch self {
        case .topK(let codec, _, _):
            let k = codec.keptCount(fraction: max(codec.fraction, 0.25))
            return 8 + (codec.signs ? 4 + (k + 7) / 8 : 4 * k) + 5 * k
        case .deflated(let inner): return 1 + inner.maximumPayloadBytes
        default: return payloadBytes
        }
    }

    /// Values a payload decodes to: the update's length, or a sketch's cells.
    public var decodedLength: Int {
        switch self {
        case .f32(let length), .fixedPoint(_, let length): length
        case .quantized(let codec): codec.length
        case .topK(let codec, _, _): codec.length
        case .sketched(let sketch, _): sketch.cellCount
        case .deflated(let inner): inner.decodedLength
        }
    }

    /// Whether the codec keeps state on each edge between rounds (``ErrorFeedback``).
    public var keepsEdgeState: Bool {
        switch self {
        case .topK: true
        case .deflated(let inner): inner.keepsEdgeState
        default: false
        }
    }

    /// Whether every payload is exactly ``payloadBytes`` long (not so for `topk` and the lossless stage).
    public var hasFixedPayloadSize: Bool {
        switch self {
        case .topK, .deflated: false
        default: true
        }
    }

    /// Bytes of one payload (for `topk`, at the target fraction with 1-byte index gaps; with the lossless
    /// stage, the inner payload stored as it is).
    public var payloadBytes: Int {
        switch self {
        case .f32(let length): 4 * length
        case .fixedPoint(_, let length): 4 * FixedPointQuantizer.encodedLength(length)
        case .quantized(let codec), .sketched(_, let codec): codec.payloadByteCount
        case .topK(let codec, _, _):
            8 + (codec.signs ? 4 + (codec.keptCount(fraction: codec.fraction) + 7) / 8 : 4 * codec.keptCount(fraction: codec.fraction))
                + codec.keptCount(fraction: codec.fraction)
        case .deflated(let inner): 1 + inner.payloadBytes
        }
    }

    /// The payload of `delta` (rounding draws from `seed`). `feedback` is the edge's error-feedback state,
    /// which `topk` folds in and updates (created when nil); other codecs leave it alone.
    /// - Throws: ``CodecError`` for a value that is not finite or a wrong length.
    public func encode(_ delta: [Float], seed: UInt64, feedback: inout ErrorFeedback?) throws(CodecError) -> [UInt8] {
        switch self {
        case .topK(let codec, let momentum, let warmUp):
            var state = feedback ?? ErrorFeedback(length: codec.length)
            if state.residual.count != codec.length { state = ErrorFeedback(length: codec.length) }
            let payload = try state.encode(delta, with: codec, momentum: momentum, warmUp: warmUp)
            feedback = state
            return payload
        case .deflated(let inner):
            return LosslessStage.wrap(try inner.encode(delta, seed: seed, feedback: &feedback))
        default:
            return try encode(delta, seed: seed)
        }
    }

    /// The payload of `delta` with no error feedback (rounding draws from `seed`).
    /// - Throws: ``CodecError`` for a value that is not finite or a wrong length.
    public func encode(_ delta: [Float], seed: UInt64) throws(CodecError) -> [UInt8] {
        switch self {
        case .f32(let length):
            guard delta.count == length else { throw CodecError("f32: the update has \(delta.count) values, the model \(length)") }
            guard delta.allSatisfy(\.isFinite) else { throw CodecError("f32: the update holds NaN or infinite values") }
            return Self.bytes(of: delta.map(\.bitPattern))
        case .fixedPoint(let codec, let length):
            guard delta.count == length else { throw CodecError("fixed32: the update has \(delta.count) values, the model \(length)") }
            return Self.bytes(of: try codec.encode(delta, examples: 1, seed: seed))
        case .quantized(let codec):
            return try codec.encodePayload(delta, seed: seed)
        case .sketched(let sketch, let codec):
            guard delta.count == sketch.length else { throw CodecError("sketch: the update has \(delta.count) values, the model \(sketch.length)") }
            return try codec.encodePayload(sketch.sketch { delta[$0] }, seed: seed)
        case .topK(let codec, _, _):
            return try codec.encode(delta, keeping: codec.keptCount(fraction: codec.fraction)).payload
        case .deflated(let inner):
            return LosslessStage.wrap(try inner.encode(delta, seed: seed))
        }
    }

    /// The update a payload carries.
    /// - Throws: ``CodecError`` for a payload of the wrong size or with values that are not finite.
    public func decode(_ payload: [UInt8]) throws(CodecError) -> [Float] {
        switch self {
        case .f32(let length):
            guard payload.count == 4 * length else { throw CodecError("f32: a payload of \(payload.count) bytes; the model takes \(4 * length)") }
            let values = Self.words(of: payload).map { Float(bitPattern: $0) }
            guard values.allSatisfy(\.isFinite) else { throw CodecError("f32: the payload holds NaN or infinite values") }
            return values
        case .fixedPoint(let codec, let length):
            guard payload.count == 4 * FixedPointQuantizer.encodedLength(length) else {
                throw CodecError("fixed32: a payload of \(payload.count) bytes; the model takes \(4 * FixedPointQuantizer.encodedLength(length))")
            }
            return try codec.decodeMean(sum: Self.words(of: payload)).mean
        case .quantized(let codec), .sketched(_, let codec):
            return try codec.decodePayload(payload)
        case .topK(let codec, _, _):
            return try codec.decode(payload)
        case .deflated(let inner):
            return try inner.decode(LosslessStage.unwrap(payload, limit: inner.maximumPayloadBytes))
        }
    }

    /// The update as the server decodes it from the payload of `local − global` (rounding draws from `seed`;
    /// for `sketch`, the sketch the server decodes).
    /// `feedback` is the edge's error-feedback state for `topk` (created when nil), unused otherwise.
    /// - Returns: the decoded update and the payload's size in bytes.
    /// - Throws: ``CodecError`` for a value that is not finite or a wrong length.
    public func roundTrip(local: [Float], global: [Float], seed: UInt64, feedback: inout ErrorFeedback?) throws(CodecError) -> (update: [Float], bytes: Int) {
        guard local.count == global.count else { throw CodecError("the local and global models differ in length") }
        let delta = zip(local, global).map { $0 - $1 }
        if case .f32 = self { return (delta, payloadBytes) }
        let payload = try encode(delta, seed: seed, feedback: &feedback)
        return (try decode(payload), payload.count)
    }

    /// The little-endian bytes of `words`.
    static func bytes(of words: [UInt32]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 4 * words.count) { out, initialized in
            let raw = UnsafeMutableRawBufferPointer(out)
            for (i, word) in words.enumerated() { raw.storeBytes(of: word.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            initialized = 4 * words.count
        }
    }

    /// The little-endian words of `bytes` (a multiple of 4 long).
    static func words(of bytes: [UInt8]) -> [UInt32] {
        [UInt32](unsafeUninitializedCapacity: bytes.count / 4) { out, initialized in
            bytes.withUnsafeBytes { raw in
                for i in 0..<(bytes.count / 4) { out[i] = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
            }
            initialized = bytes.count / 4
        }
    }
}
