import FlockCore
import FlockCrypto
import Foundation

/// Model files stored by content: `artifacts/sha256/AB/ABCDEF….flockmdl` under the registry folder.
///
/// A file is written atomically (temporary name, fsync, rename, fsync of the folder) before any row names it,
/// so a crash leaves either the whole file or none; a file without a row is harmless and `registry gc`
/// removes it. Every read re-hashes the bytes and refuses a file whose hash is not its name.
public struct ArtifactStore: Sendable {
    /// The `artifacts` folder.
    public let folder: String

    /// The store under `registryFolder`.
    public init(registryFolder: String) {
        folder = registryFolder + "/artifacts"
    }

    /// The path of the artifact of `hash`.
    public func path(of hash: String) -> String {
        "\(folder)/sha256/\(hash.prefix(2))/\(hash).flockmdl"
    }

    /// Stores a model file and returns its hash and parameter count; storing the same file again writes nothing.
    /// - Throws: ``RegistryError/Code/integrity`` for bytes that are not a whole model file, ``RegistryError/Code/io``
    ///   when the disk refuses.
    @discardableResult
    public func store(_ file: [UInt8]) throws(RegistryError) -> (hash: SHA256.Digest, parameters: Int) {
        let decoded: (file: ModelFile, hash: SHA256.Digest)
        do { decoded = try ModelFile.decode(bytes: file, source: "new artifact") } catch {
            throw RegistryError(.integrity, "not a model file: \(error.message)")
        }
        let hash = decoded.hash
        let target = path(of: hash.hex)
        // The same bytes already there (a damaged copy is replaced).
        if let existing = try? FileIO.read(target), existing == file { return (hash, decoded.file.parameters.count) }
        do {
            try FileManager.default.createDirectory(
                atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try FileIO.writeAtomically(file, to: target)
        } catch let error as CoreError {
            throw RegistryError(.io, error.message)
        } catch {
            throw RegistryError(.io, "\(target): cannot create its folder", cause: error)
        }
        return (hash, decoded.file.parameters.count)
    }

    /// Reads the artifact of `hash`, checking that its bytes hash to it.
    /// - Throws: ``RegistryError/Code/notFound`` when it is missing (collected or never stored),
    ///   ``RegistryError/Code/integrity`` when it is damaged or holds another model.
    public func read(_ hash: String) throws(RegistryError) -> [UInt8] {
        let file = path(of: hash)
        guard FileManager.default.fileExists(atPath: file) else {
            throw RegistryError(.notFound, "artifact \(hash.prefix(12)) is missing from \(folder)")
        }
        let bytes: [UInt8]
        do { bytes = try FileIO.read(file) } catch { throw RegistryError(.io, error.message) }
        let actual: SHA256.Digest
        do { actual = try ModelFile.decode(bytes: bytes, source: file).hash } catch {
            throw RegistryError(.integrity, "artifact \(hash.prefix(12)) is damaged: \(error.message)")
        }
        guard actual.hex == hash else {
            throw RegistryError(.integrity, "artifact \(hash.prefix(12)) holds another model (\(actual.hex.prefix(12)))")
        }
        return bytes
    }

    /// Removes the artifact of `hash` (its row stays).
    public func remove(_ hash: String) {
        try? FileManager.default.removeItem(atPath: path(of: hash))
    }

    /// Hashes of every artifact file present (for `gc` and `verify`).
    public func storedHashes() -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: folder + "/sha256") else { return [] }
        var hashes: [String] = []
        while let entry = enumerator.nextObject() as? String {
            let name = (entry as NSString).lastPathComponent
            if name.hasSuffix(".flockmdl"), !name.hasPrefix(".") { hashes.append(String(name.dropLast(".flockmdl".count))) }
        }
        return hashes.sorted()
    }
}
