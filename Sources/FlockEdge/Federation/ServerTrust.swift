import FlockCore
import FlockCrypto
import Foundation

/// The server model-signing key an edge trusts, and the check every model passes before the edge trains on
/// it, serves it or compares with it.
///
/// The key is given (`flock-edge run --server-key`), or pinned on first contact (trust on first use) in
/// `STATE_DIR/server-signing.pub`; after that a server announcing another key is refused until an operator
/// removes the file.
public actor ServerTrust {
    /// The pinned key's file name in the state directory.
    public static let fileName = "server-signing.pub"

    private var key: Ed25519.PublicKey?
    private let path: String

    /// Loads the pinned key from `stateDirectory`, and checks it against `configured` when both exist.
    /// - Throws: ``CoreError/Code/invalidData`` when the file is malformed or disagrees with `configured`.
    public init(stateDirectory: String, configured: Ed25519.PublicKey?) throws(CoreError) {
        path = stateDirectory + "/" + Self.fileName
        let pinned = try Self.read(path)
        if let configured, let pinned, configured != pinned {
            throw CoreError(.invalidData, "\(path) pins another server key than --server-key; remove the file if the server's key really changed")
        }
        key = configured ?? pinned
        if let configured, pinned == nil { try Self.write(configured, to: path) }
    }

    /// The key pinned in `stateDirectory`, if any.
    /// - Throws: ``CoreError/Code/invalidData`` for a malformed file.
    public static func pinnedKey(stateDirectory: String) throws(CoreError) -> Ed25519.PublicKey? {
        try read(stateDirectory + "/" + fileName)
    }

    private static func read(_ path: String) throws(CoreError) -> Ed25519.PublicKey? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let text = String(decoding: try FileIO.read(path), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let bytes = Hex.decode(text), let key = try? Ed25519.PublicKey(bytes: bytes) else {
            throw CoreError(.invalidData, "\(path): not an Ed25519 public key in hex; remove it to pin the server's key again")
        }
        return key
    }

    private static func write(_ key: Ed25519.PublicKey, to path: String) throws(CoreError) {
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileIO.writeAtomically(Array((Hex.encode(key.bytes) + "\n").utf8), to: path)
    }

    /// Takes the key a server announced at registration: pins it on first contact, else it must be the pinned one.
    /// - Throws: ``CoreError/Code/invalidData`` for a malformed or different key.
    public func accept(announced hex: String) throws(CoreError) {
        guard let bytes = Hex.decode(hex), let announced = try? Ed25519.PublicKey(bytes: bytes) else {
            throw CoreError(.invalidData, "the server announced no valid model-signing key; refusing to work with it")
        }
        if let key {
            guard key == announced else {
                throw CoreError(.invalidData, "the server's model-signing key is not the one pinned in \(path); remove that file only if the key really changed")
            }
            return
        }
        try Self.write(announced, to: path)
        key = announced
    }

    /// Checks the server's signature of the model whose file hashes to `hash`.
    /// - Throws: ``CoreError/Code/corruptFile`` when there is no trusted key yet or the signature does not verify.
    public func verify(signature: [UInt8], hash: String) throws(CoreError) {
        guard let key else { throw CoreError(.corruptFile, "no trusted server key yet: cannot check model \(hash.prefix(12))") }
        try ModelSignature.verify(signature: Hex.encode(signature), hash: hash, publicKey: key)
    }
}
