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
    /// - Returns: the content hash (SHA-256 of the file without its trailer).
    @discardableResult
    public func write(to path: String) throws(CoreError) -> SHA256.Digest {
        try archive().write(path: path, magic: ModelFile.magic)
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
        return ModelFile(spec: header.spec, scaling: header.scaling, metadata: header.metadata, parameters: parameters)
    }

    /// Builds the model with these weights.
    /// - Throws: ``CoreError`` when the spec is invalid or the parameter count does not match it.
    public func makeModel() throws(CoreError) -> Model {
        do { return try Model(spec: spec, parameters: parameters) } catch where error.code == .modelMismatch {
            throw CoreError(.corruptFile, "model file: its spec does not fit its parameters (\(error.message))")
        }
    }
}
