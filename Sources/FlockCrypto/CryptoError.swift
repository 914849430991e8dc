/// Why a cryptographic operation failed. The message says what was wrong with the input; secrets are
/// never part of it.
public struct CryptoError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure.
    public enum Kind: Sendable, Equatable {
        /// A key, nonce, share or signature of the wrong size or form.
        case malformedInput
        /// A ciphertext or signature that does not verify (tampered, wrong key, wrong associated data).
        case authenticationFailed
        /// A public key that gives no usable shared secret (a low-order point).
        case weakKey
        /// Too few or inconsistent shares to reconstruct a secret.
        case notEnoughShares
    }

    /// The kind.
    public let kind: Kind
    /// A one-line message.
    public let message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
