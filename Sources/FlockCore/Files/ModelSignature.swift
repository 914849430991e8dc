import FlockCrypto

/// The server's Ed25519 signature of a model: what is signed, and how edges and `registry verify` check it.
///
/// The signed message is the domain string `flock-model-v1` followed by the 32 bytes of the model file's
/// SHA-256 (the hash in its trailer), so a signature cannot be replayed for another file or for another kind
/// of message signed with the same key.
public enum ModelSignature {
    /// The bytes that are signed for the model whose file hashes to `hash`.
    public static func message(for hash: SHA256.Digest) -> [UInt8] {
        Array("flock-model-v1".utf8) + hash.bytes
    }

    /// Signs the model of `hash`; returns the signature as hex.
    public static func sign(_ hash: SHA256.Digest, with key: Ed25519.KeyPair) -> String {
        Hex.encode(key.sign(message(for: hash)))
    }

    /// Checks a hex signature of the model of hex hash `hash` against `publicKey`.
    /// - Throws: ``CoreError/Code/corruptFile`` naming the model when the hash or signature is malformed or does
    ///   not verify.
    public static func verify(signature: String, hash: String, publicKey: Ed25519.PublicKey) throws(CoreError) {
        guard let digest = SHA256.Digest(hex: hash), let bytes = Hex.decode(signature), bytes.count == Ed25519.signatureBytes else {
            throw CoreError(.corruptFile, "model \(hash.prefix(12)): malformed hash or signature")
        }
        do { try publicKey.verify(bytes, of: message(for: digest)) } catch {
            throw CoreError(.corruptFile, "model \(hash.prefix(12)): the server's signature does not verify; refusing it")
        }
    }
}
