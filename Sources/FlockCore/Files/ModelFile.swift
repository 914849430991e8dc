import FlockCrypto
import Foundation

/// A trained model on disk: its spec, the feature scaling learned on its training data, free-form
/// metadata and the flat parameter vector, in the versioned ``Archive`` format with a SHA-256 content
/// hash that is checked before anything is parsed.
public struct ModelFile: Sendable, Equatable {
    /// The 8 magic bytes of model files.
    public static let magic = "FLOCKMDL"

    /// The architecture.
    public var spec: ModelSpec
    /// Scaling applied to raw features before the model sees them.
    public var scaling: FeatureScaling
    /// Free-form string metadata (e.g. how it was trained).
    public var metadata: [String: String]
    /// The flat parameter vector.
    public var parameters: [Float]

    /// Creates a model file value.
    public init(spec: ModelSpec, scaling: FeatureScaling, metadata: [String: String] = [:], parameters: [Float]) {
        self.spec = spec
        self.scaling = scaling
        self.metadata = metadata
        self.parameters = parameters
    }

    /// Captures a model's current weights.
    public init(model: Model, scaling: FeatureScaling, metadata: [String: String] = [:]) {
        self.init(spec: model.spec, scaling: scaling, metadata: metadata, parameters: model.parameterVector())
    }

    private struct Header: Codable {
        var format: String
        var spec: ModelSpec
        var scaling: FeatureScaling
        var metadata: [String: String]
    }

    /// The serialized bytes and their content hash.
    public func encoded() -> (bytes: [UInt8], hash: SHA256.Digest) {
        archive().encode(magic: ModelFile.magic)
    }

    private func archive() -> Archive {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let header = try! encoder.encode(Header(format: "flock-model", spec: spec, scaling: scaling, metadata: metadata))
        return Archive(header: header, sections: [("parameters", parameters)])
    }

    /// Writes the file atomically.
    /// - Parameter permissions: the file's exact mode (0o600 for a server's data directory), or `nil` for the
    ///   umask's choice.
    /// - Returns: the content hash (SHA-256 of the file without its trailer).
    @discardableResult
    public func write(to path: String, permissions: mode_t? = nil) throws(CoreError) -> SHA256.Digest {
        try archive().write(path: path, magic: ModelFile.magic, permissions: permissions)
    }

    /// Reads a model file, verifying its content hash first, then its structure.
    /// - Throws: ``CoreError`` with `.fileNotFound`, `.corruptFile` or `.unsupportedVersion`.
    public static func read(from path: String) throws(CoreError) -> (file: ModelFile, hash: SHA256.Digest) {
        let (archive, hash) = try Archive.read(path: path, magic: magic, kind: "model file")
        return (try decode(archive, path: path), hash)
    }

    /// Parses model-file bytes (e.g. received over the network), verifying the hash first.
    public static func decode(bytes: [UInt8], source: String) throws(CoreError) -> (file: ModelFile, hash: SHA256.Digest) {
        let (archive, hash) = try Archive.decode(bytes, magic: magic, kind: "model file", path: source)
        return (try decode(archive, path: source), hash)
    }

    private static func decode(_ archive: Archive, path: String) throws(CoreError) -> ModelFile {
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: archive.header)
        } catch {
            throw CoreError(.corruptFile, "\(path): unreadable model header")
        }
        let parameters = try archive.section("parameters", path: path)
        try check(header.spec, scaling: header.scaling, parameters: parameters.count, path: path)
        return ModelFile(spec: header.spec, scaling: header.scaling, metadata: header.metadata, parameters: parameters)
    }

    /// Checks that a spec read from a file is one this build can allocate (every dimension and size bounded, see
    /// ``ModelSpec/maximumDimension``), that it has exactly `parameters` parameters (or none: a skeleton, the
    /// header of a file whose weights travel apart, as a quantized download's do), and that the scaling fits its
    /// input, so that a file with a valid hash but crafted contents is refused before anything is built from it.
    private static func check(_ spec: ModelSpec, scaling: FeatureScaling, parameters: Int, path: String) throws(CoreError) {
        let count: Int
        do { count = try Model.checkedLayers(spec).parameters } catch where error.code == .unsupportedVersion {
            throw CoreError(.unsupportedVersion, "\(path): \(error.message)")
        } catch {
            throw CoreError(.corruptFile, "\(path): the model's spec is not one this build can load: \(error.message)")
        }
        guard count == parameters || parameters == 0 else {
            throw CoreError(.corruptFile, "\(path): the spec has \(count) parameters but the file holds \(parameters)")
        }
        switch scaling {
        case .none:
            break
        case .max(let largest):
            guard largest.isFinite, largest > 0 else { throw CoreError(.corruptFile, "\(path): the max scaling must be a positive number") }
        case .standardize(let mean, let deviation):
            guard mean.count == spec.inputFeatures, deviation.count == spec.inputFeatures else {
                throw CoreError(
                    .corruptFile,
                    "\(path): the scaling has \(mean.count) means and \(deviation.count) deviations for \(spec.inputFeatures) features")
            }
            guard mean.allSatisfy(\.isFinite), deviation.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw CoreError(.corruptFile, "\(path): the scaling's means must be finite and its deviations positive")
            }
        }
    }

    /// Builds the model with these weights.
    /// - Throws: ``CoreError`` when the spec is invalid or the parameter count does not match it.
    public func makeModel() throws(CoreError) -> Model {
        do { return try Model(spec: spec, parameters: parameters) } catch where error.code == .modelMismatch {
            throw CoreError(.corruptFile, "model file: its spec does not fit its parameters (\(error.message))")
        }
    }
}
