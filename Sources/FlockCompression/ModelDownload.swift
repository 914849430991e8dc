import FlockCore

/// `--download-codec`: how the global model travels from the server to the edges. Lossy compression of
/// the server-to-edge model follows Caldas et al. 2018 ("Expanding the Reach of Federated Learning by
/// Reducing Client Resource Requirements"): every edge trains from the same decoded model, computes its
/// update against that model, and the server adds the mean update to its own full-precision global, so the
/// rounding of a download is never carried into the next round's model.
///
/// Identifiers: `f32` (the model file as it is, the default), `f32+deflate`, `q{b}` and `rot+q{b}` for b in
/// 4, 8, 16, each optionally `+deflate`. Rounding draws from a fixed seed, so one global model has exactly
/// one served model, whose file hash the round plan names; the edge rebuilds that file and checks the hash.
///
/// Wire format of a download other than `f32` (little-endian): UInt32 S, then S bytes of the served model
/// file without its parameters (its spec, feature scaling and metadata, with its own hash trailer), UInt32
/// n (parameters), then the weights' payload in the codec (the `q{b}` format of ``StochasticQuantizer``,
/// after ``LosslessStage`` with `+deflate`).
public struct ModelDownload: Sendable, Equatable {
    /// The codec of the weights.
    public let spec: CodecSpec

    /// Seed of a download's rounding and rotation, the same on both ends and in every round.
    static let seed: UInt64 = 0xD0_3E_10AD
    /// Largest parameter count a download may announce (512 MiB of floats).
    static let maximumParameters = 1 << 27

    /// The uncompressed download.
    public static let f32 = ModelDownload(checked: .f32)

    private init(checked spec: CodecSpec) { self.spec = spec }

    /// Parses a download codec identifier.
    /// - Throws: ``CodecError`` naming the accepted forms.
    public init(parsing text: String) throws(CodecError) {
        let spec = try CodecSpec(parsing: text)
        var inner = spec
        if case .deflated(let base) = spec { inner = base }
        switch inner {
        case .f32: break
        case .quantized(let bits, _) where bits >= 4: break
        default:
            throw CodecError(
                "download codec '\(text)': use f32, q4, q8, q16, rot+q4, rot+q8 or rot+q16, each optionally +deflate "
                    + "(a model needs at least 4 bits per weight; sparse and ring codecs are for updates)")
        }
        self.spec = spec
    }

    /// The identifier.
    public var identifier: String { spec.identifier }

    /// What the edges receive for a model file.
    public struct Prepared: Sendable {
        /// The model the edges will hold: `file` with its weights as the edges decode them.
        public let served: ModelFile
        /// SHA-256 (hex) of the served model's file, which the round plan names.
        public let servedHash: String
        /// The bytes that travel.
        public let payload: [UInt8]
    }

    /// The served model of `file` and the bytes that carry it.
    /// - Throws: ``CodecError`` for weights that are not finite.
    public func prepare(_ file: ModelFile) throws(CodecError) -> Prepared {
        if spec == .f32 {
            let (bytes, hash) = file.encoded()
            return Prepared(served: file, servedHash: hash.hex, payload: bytes)
        }
        let codec = try PlainCodec(spec, length: file.parameters.count, seed: Self.seed)
        let weights = try codec.encode(file.parameters, seed: Self.seed)
        var served = file
        served.parameters = try codec.decode(weights)
        var skeleton = file
        skeleton.parameters = []
        let head = skeleton.encoded().bytes
        var payload = [UInt8]()
        payload.reserveCapacity(8 + head.count + weights.count)
        StochasticQuantizer.append(UInt32(head.count), to: &payload)
        payload += head
        StochasticQuantizer.append(UInt32(file.parameters.count), to: &payload)
        payload += weights
        return Prepared(served: served, servedHash: served.encoded().hash.hex, payload: payload)
    }

    /// The model file a download carries. The caller checks its hash against the plan's.
    /// - Throws: ``CodecError`` for a payload that is truncated, padded, corrupt or not in this codec.
    public func decode(_ payload: [UInt8], source: String) throws(CodecError) -> ModelFile {
        if spec == .f32 {
            do { return try ModelFile.decode(bytes: payload, source: source).file } catch {
                throw CodecError(error.message)
            }
        }
        guard payload.count >= 8 else { throw CodecError("\(source): a \(identifier) download of \(payload.count) bytes is truncated") }
        let headBytes = Int(Self.word(payload, at: 0))
        guard headBytes <= payload.count - 8 else { throw CodecError("\(source): the download's model header runs past its end") }
        var file: ModelFile
        do { file = try ModelFile.decode(bytes: Array(payload[4..<(4 + headBytes)]), source: source).file } catch {
            throw CodecError(error.message)
        }
        guard file.parameters.isEmpty else { throw CodecError("\(source): the download's model header carries weights") }
        let count = Int(Self.word(payload, at: 4 + headBytes))
        guard (1...Self.maximumParameters).contains(count) else {
            throw CodecError("\(source): a download of \(count) parameters (1 to \(Self.maximumParameters))")
        }
        let codec = try PlainCodec(spec, length: count, seed: Self.seed)
        file.parameters = try codec.decode(Array(payload[(8 + headBytes)...]))
        return file
    }

    /// The little-endian word at `offset`.
    private static func word(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }
}
