internal import CSodium

/// X25519 key agreement (RFC 7748) over libsodium's `crypto_scalarmult`, with the shared secret
/// passed through BLAKE2b together with both public keys and a context label, so that the two sides
/// derive the same 32-byte key and different uses of one key pair derive unrelated keys.
public enum X25519 {
    /// Bytes of a public or private key, and of a derived key.
    public static let keyBytes = 32

    /// A public key.
    public struct PublicKey: Sendable, Hashable, Codable {
        /// The 32 key bytes.
        public let bytes: [UInt8]

        /// Wraps 32 bytes.
        /// - Throws: ``CryptoError/Kind/malformedInput`` for another length.
        public init(bytes: [UInt8]) throws(CryptoError) {
            guard bytes.count == X25519.keyBytes else {
                throw CryptoError(.malformedInput, "an X25519 public key has 32 bytes, got \(bytes.count)")
            }
            self.bytes = bytes
        }
    }

    /// A key pair; the private half is zeroed when the pair is released.
    public struct KeyPair: Sendable {
        /// The public key.
        public let publicKey: PublicKey
        /// The private scalar.
        public let privateKey: SecretBytes

        /// A fresh random key pair.
        public static func generate() -> KeyPair { try! KeyPair(privateKey: .random(count: X25519.keyBytes)) }

        /// The key pair of a given private scalar.
        /// - Throws: ``CryptoError/Kind/malformedInput`` for a scalar that is not 32 bytes.
        public init(privateKey: SecretBytes) throws(CryptoError) {
            guard privateKey.count == X25519.keyBytes else {
                throw CryptoError(.malformedInput, "an X25519 private key has 32 bytes, got \(privateKey.count)")
            }
            Sodium.ensureInitialized()
            var publicBytes = [UInt8](repeating: 0, count: X25519.keyBytes)
            privateKey.withUnsafe { sk in _ = crypto_scalarmult_base(&publicBytes, sk.baseAddress!) }
            self.privateKey = privateKey
            publicKey = try PublicKey(bytes: publicBytes)
        }

        /// The key both sides derive: BLAKE2b-256 keyed by nothing over
        /// `context || X25519(sk, peer) || min(pk, peer) || max(pk, peer)` (the ordering makes it symmetric).
        /// - Throws: ``CryptoError/Kind/weakKey`` when `peer` is a low-order point (the shared secret is zero).
        public func sharedKey(with peer: PublicKey, context: String) throws(CryptoError) -> SecretBytes {
            Sodium.ensureInitialized()
            var shared = [UInt8](repeating: 0, count: X25519.keyBytes)
            defer { sodium_memzero(&shared, shared.count) }
            let status = privateKey.withUnsafe { sk in
                peer.bytes.withUnsafeBufferPointer { pk in crypto_scalarmult(&shared, sk.baseAddress!, pk.baseAddress!) }
            }
            guard status == 0 else { throw CryptoError(.weakKey, "the peer's public key is a low-order point") }
            let (low, high) = publicKey.bytes.lexicographicallyPrecedes(peer.bytes) ? (publicKey, peer) : (peer, publicKey)
            var input = Array(context.utf8) + [0] + shared + low.bytes + high.bytes
            defer { sodium_memzero(&input, input.count) }
            return SecretBytes(BLAKE2b.hash(input, outputBytes: X25519.keyBytes))
        }
    }
}

/// BLAKE2b (RFC 7693) over libsodium's `crypto_generichash`.
public enum BLAKE2b {
    /// The digest of `bytes`, `outputBytes` long (16-64), keyed when `key` (16-64 bytes) is given.
    public static func hash(_ bytes: [UInt8], outputBytes: Int = 32, key: [UInt8] = []) -> [UInt8] {
        precondition((16...64).contains(outputBytes), "BLAKE2b output is 16-64 bytes")
        precondition(key.isEmpty || (16...64).contains(key.count), "a BLAKE2b key is 16-64 bytes")
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: outputBytes)
        _ = bytes.withUnsafeBufferPointer { b in
            key.withUnsafeBufferPointer { k in
                crypto_generichash(&out, outputBytes, b.baseAddress, UInt64(b.count), key.isEmpty ? nil : k.baseAddress, key.count)
            }
        }
        return out
    }
}
