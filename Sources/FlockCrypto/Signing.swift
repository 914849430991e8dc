internal import CSodium

/// Ed25519 signatures (RFC 8032) over libsodium's `crypto_sign_ed25519` (detached).
public enum Ed25519 {
    /// Public key bytes.
    public static let publicKeyBytes = 32
    /// Signature bytes.
    public static let signatureBytes = 64

    /// A verifying key.
    public struct PublicKey: Sendable, Hashable, Codable {
        /// The 32 key bytes.
        public let bytes: [UInt8]

        /// Wraps 32 bytes.
        /// - Throws: ``CryptoError/Kind/malformedInput`` for another length.
        public init(bytes: [UInt8]) throws(CryptoError) {
            guard bytes.count == Ed25519.publicKeyBytes else {
                throw CryptoError(.malformedInput, "an Ed25519 public key has 32 bytes, got \(bytes.count)")
            }
            self.bytes = bytes
        }

        /// Checks a detached signature of `message`.
        /// - Throws: ``CryptoError/Kind/authenticationFailed`` when it does not verify.
        public func verify(_ signature: [UInt8], of message: [UInt8]) throws(CryptoError) {
            guard signature.count == Ed25519.signatureBytes else {
                throw CryptoError(.malformedInput, "an Ed25519 signature has 64 bytes, got \(signature.count)")
            }
            Sodium.ensureInitialized()
            let status = message.withUnsafeBufferPointer { m in
                crypto_sign_ed25519_verify_detached(signature, m.baseAddress, UInt64(m.count), bytes)
            }
            guard status == 0 else { throw CryptoError(.authenticationFailed, "the Ed25519 signature does not verify") }
        }
    }

    /// A signing key pair; the secret half is zeroed when released.
    public struct KeyPair: Sendable {
        /// The verifying key.
        public let publicKey: PublicKey
        private let secretKey: SecretBytes
        /// The 32-byte seed the pair derives from (what to store to keep the key).
        public let seed: SecretBytes

        /// A fresh random key pair.
        public static func generate() -> KeyPair { try! KeyPair(seed: .random(count: 32)) }

        /// The key pair of a 32-byte seed.
        /// - Throws: ``CryptoError/Kind/malformedInput`` for another seed length.
        public init(seed: SecretBytes) throws(CryptoError) {
            guard seed.count == 32 else { throw CryptoError(.malformedInput, "an Ed25519 seed has 32 bytes, got \(seed.count)") }
            Sodium.ensureInitialized()
            var pk = [UInt8](repeating: 0, count: Ed25519.publicKeyBytes)
            var sk = [UInt8](repeating: 0, count: Int(crypto_sign_ed25519_SECRETKEYBYTES))
            seed.withUnsafe { s in _ = crypto_sign_ed25519_seed_keypair(&pk, &sk, s.baseAddress!) }
            secretKey = SecretBytes(sk)
            sodium_memzero(&sk, sk.count)
            self.seed = seed
            publicKey = try PublicKey(bytes: pk)
        }

        /// A detached signature of `message`.
        public func sign(_ message: [UInt8]) -> [UInt8] {
            var signature = [UInt8](repeating: 0, count: Ed25519.signatureBytes)
            message.withUnsafeBufferPointer { m in
                secretKey.withUnsafe { sk in _ = crypto_sign_ed25519_detached(&signature, nil, m.baseAddress, UInt64(m.count), sk.baseAddress!) }
            }
            return signature
        }
    }
}
