import FlockCore
import FlockCrypto
import Foundation

/// The server model-signing key an edge trusts, and the check every model passes before the edge trains on
/// it, serves it or compares with it.
///
/// The key is given (`flock-edge run --server-key`, which replaces a pinned key), or pinned on first contact
/// (trust on first use) in `STATE_DIR/server-signing.pub`. After that a server announcing another key is
/// refused, and refused again at every attempt, until the operator removes the file (the next attempt pins
/// the key the server announces then) or gives the server's key with `--server-key`.
public actor ServerTrust {
    /// The pinned key's file name in the state directory.
    public static let fileName = "server-signing.pub"

    private var key: Ed25519.PublicKey?
    /// Whether `key` came from `--server-key` (else from the pinned file or first contact).
    private let configured: Bool
    /// The pinned key's file.
    public nonisolated let path: String

    /// Loads the pinned key from `stateDirectory`; a `configured` key (the operator's `--server-key`) takes its
    /// place and is pinned.
    /// - Throws: ``CoreError/Code/invalidData`` when the file is malformed and no key is configured;
    ///   ``CoreError/Code/io`` when the configured key cannot be written.
    public init(stateDirectory: String, configured: Ed25519.PublicKey?) throws(CoreError) {
        path = stateDirectory + "/" + Self.fileName
        self.configured = configured != nil
        if let configured {
            if (try? Self.read(path)) != configured { try Self.write(configured, to: path) }
            key = configured
        } else {
            key = try Self.read(path)
        }
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

    /// Takes the key a server announced at registration: pins it on first contact, else it must be the trusted
    /// one. A pinned key (not `--server-key`) is read again from its file first, so that removing the file lets
    /// the edge pin the server's new key without a restart.
    /// - Returns: true when the announced key was pinned just now.
    /// - Throws: ``CoreError/Code/invalidData`` for a malformed key, or one that is not the trusted key; the
    ///   message says what happened and what the operator can do.
    @discardableResult
    public func accept(announced hex: String) throws(CoreError) -> Bool {
        guard let bytes = Hex.decode(hex), let announced = try? Ed25519.PublicKey(bytes: bytes) else {
            throw CoreError(.invalidData, "the server announced no valid model-signing key; this edge does not work with it")
        }
        if !configured { key = try Self.read(path) }
        guard let key else {
            try Self.write(announced, to: path)
            key = announced
            return true
        }
        guard key != announced else { return false }
        let theirs = Self.fingerprint(announced), ours = Self.fingerprint(key)
        if configured {
            throw CoreError(
                .invalidData,
                "this edge refuses the server: it announces model-signing key \(theirs), not the key given with --server-key (\(ours)). "
                    + "If the server's key really changed, restart this edge with --server-key SERVER_DATA_DIR/\(Self.fileName) from that server")
        }
        throw CoreError(
            .invalidData,
            "this edge refuses the server: it announces model-signing key \(theirs), but this edge pinned \(ours) in \(path) "
                + "(the server was started with a fresh data directory, or another server answers at this address). "
                + "If the server's key really changed, remove \(path) (the next attempt pins the new key) "
                + "or restart this edge with --server-key SERVER_DATA_DIR/\(Self.fileName)")
    }

    /// The first 16 hex digits of a key, enough for a person to tell two keys apart.
    private static func fingerprint(_ key: Ed25519.PublicKey) -> String { String(Hex.encode(key.bytes).prefix(16)) + "…" }

    /// Checks the server's signature of the model whose file hashes to `hash`.
    /// - Throws: ``CoreError/Code/corruptFile`` when there is no trusted key yet or the signature does not verify.
    public func verify(signature: [UInt8], hash: String) throws(CoreError) {
        guard let key else { throw CoreError(.corruptFile, "no trusted server key yet: cannot check model \(hash.prefix(12))") }
        try ModelSignature.verify(signature: Hex.encode(signature), hash: hash, publicKey: key)
    }
}
