internal import CSodium

/// Secret key material that is zeroed (`sodium_memzero`) when the last reference goes away.
///
/// A reference type so that copies share one buffer and exactly one zeroing happens; immutable after
/// creation, hence `Sendable`. The wrappers of this module read it in place; ``bytes`` makes a plain copy
/// for the rare place that must hand the secret on (it is then that place's job to keep it short-lived).
public final class SecretBytes: Sendable, Equatable {
    private nonisolated(unsafe) let storage: UnsafeMutableBufferPointer<UInt8>

    /// Takes `bytes` as the secret (the caller's array is not zeroed: pass a temporary).
    public init(_ bytes: [UInt8]) {
        storage = .allocate(capacity: max(1, bytes.count))
        storage.initialize(repeating: 0)
        for (i, b) in bytes.enumerated() { storage[i] = b }
        count = bytes.count
    }

    /// `count` fresh random bytes.
    public static func random(count: Int) -> SecretBytes { SecretBytes(SecureRandom.bytes(count)) }

    /// Number of bytes.
    public let count: Int

    deinit {
        sodium_memzero(storage.baseAddress!, storage.count)
        storage.deallocate()
    }

    /// A plain copy of the secret.
    public var bytes: [UInt8] { Array(storage[0..<count]) }

    /// Constant-time equality.
    public static func == (a: SecretBytes, b: SecretBytes) -> Bool { ConstantTime.equals(a.bytes, b.bytes) }

    /// The raw buffer, for the wrappers of this module only.
    func withUnsafe<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(rebasing: storage[0..<count]))
    }
}
