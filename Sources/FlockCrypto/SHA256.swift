internal import CSodium

/// SHA-256 (FIPS 180-4) over libsodium's `crypto_hash_sha256`.
///
/// Used for content addresses of model files and checkpoints. Incremental use:
/// create, ``update(_:)`` any number of times, then ``finalize()``.
public struct SHA256: Sendable {
    /// The size of a digest in bytes.
    public static let byteCount = 32

    private var state = crypto_hash_sha256_state()

    /// Starts a new hash computation.
    public init() {
        Sodium.ensureInitialized()
        crypto_hash_sha256_init(&state)
    }

    /// Feeds bytes into the hash.
    public mutating func update(_ bytes: some Collection<UInt8>) {
        let done = bytes.withContiguousStorageIfAvailable { buffer in
            crypto_hash_sha256_update(&state, buffer.baseAddress, UInt64(buffer.count))
        }
        if done == nil {
            let copy = Array(bytes)
            _ = copy.withUnsafeBufferPointer { crypto_hash_sha256_update(&state, $0.baseAddress, UInt64($0.count)) }
        }
    }

    /// Finishes the computation and returns the 32-byte digest.
    public mutating func finalize() -> Digest {
        var out = [UInt8](repeating: 0, count: SHA256.byteCount)
        crypto_hash_sha256_final(&state, &out)
        return Digest(bytes: out)
    }

    /// The SHA-256 digest of `bytes` in one call.
    public static func hash(_ bytes: some Collection<UInt8>) -> Digest {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// A 32-byte SHA-256 digest.
    public struct Digest: Hashable, Sendable, CustomStringConvertible {
        /// The digest bytes (32).
        public let bytes: [UInt8]

        /// Wraps 32 digest bytes.
        public init(bytes: [UInt8]) {
            precondition(bytes.count == SHA256.byteCount, "a SHA-256 digest has 32 bytes")
            self.bytes = bytes
        }

        /// Parses 64 lowercase or uppercase hex digits; nil if malformed.
        public init?(hex: String) {
            guard let bytes = Hex.decode(hex), bytes.count == SHA256.byteCount else { return nil }
            self.bytes = bytes
        }

        /// Lowercase hex, 64 characters.
        public var hex: String { Hex.encode(bytes) }

        public var description: String { hex }

        /// Compares with another digest in constant time.
        public func constantTimeEquals(_ other: Digest) -> Bool {
            ConstantTime.equals(bytes, other.bytes)
        }
    }
}
