internal import CSodium

/// XChaCha20-Poly1305 authenticated encryption (libsodium's `crypto_aead_xchacha20poly1305_ietf`), with a
/// random 24-byte nonce per message, which is safe to draw at random at this nonce size.
///
/// Sealed box layout: `nonce (24) || ciphertext || tag (16)`.
public enum AEAD {
    /// Key bytes.
    public static let keyBytes = 32
    /// Nonce bytes.
    public static let nonceBytes = 24
    /// Tag bytes.
    public static let tagBytes = 16

    /// Encrypts and authenticates `plaintext`, binding `associatedData` (authenticated, not encrypted).
    /// - Throws: ``CryptoError/Kind/malformedInput`` for a key that is not 32 bytes.
    public static func seal(_ plaintext: [UInt8], key: SecretBytes, associatedData: [UInt8] = []) throws(CryptoError) -> [UInt8] {
        guard key.count == keyBytes else { throw CryptoError(.malformedInput, "an AEAD key has 32 bytes, got \(key.count)") }
        Sodium.ensureInitialized()
        let nonce = SecureRandom.bytes(nonceBytes)
        var box = nonce + [UInt8](repeating: 0, count: plaintext.count + tagBytes)
        var written: UInt64 = 0
        box.withUnsafeMutableBufferPointer { out in
            plaintext.withUnsafeBufferPointer { p in
                associatedData.withUnsafeBufferPointer { ad in
                    key.withUnsafe { k in
                        _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                            out.baseAddress! + nonceBytes, &written, p.baseAddress, UInt64(p.count),
                            ad.baseAddress, UInt64(ad.count), nil, out.baseAddress!, k.baseAddress!)
                    }
                }
            }
        }
        return box
    }

    /// Checks and decrypts a sealed box.
    /// - Throws: ``CryptoError/Kind/authenticationFailed`` when the box was altered or the key or
    ///   associated data differ; ``CryptoError/Kind/malformedInput`` for a box too short to hold a nonce and tag.
    public static func open(_ box: [UInt8], key: SecretBytes, associatedData: [UInt8] = []) throws(CryptoError) -> [UInt8] {
        guard key.count == keyBytes else { throw CryptoError(.malformedInput, "an AEAD key has 32 bytes, got \(key.count)") }
        guard box.count >= nonceBytes + tagBytes else {
            throw CryptoError(.malformedInput, "a sealed box has at least \(nonceBytes + tagBytes) bytes, got \(box.count)")
        }
        Sodium.ensureInitialized()
        var plaintext = [UInt8](repeating: 0, count: box.count - nonceBytes - tagBytes)
        var written: UInt64 = 0
        let status = plaintext.withUnsafeMutableBufferPointer { out in
            box.withUnsafeBufferPointer { b in
                associatedData.withUnsafeBufferPointer { ad in
                    key.withUnsafe { k in
                        crypto_aead_xchacha20poly1305_ietf_decrypt(
                            out.baseAddress, &written, nil, b.baseAddress! + nonceBytes, UInt64(b.count - nonceBytes),
                            ad.baseAddress, UInt64(ad.count), b.baseAddress!, k.baseAddress!)
                    }
                }
            }
        }
        guard status == 0 else { throw CryptoError(.authenticationFailed, "the sealed box does not authenticate (altered, or another key or context)") }
        return plaintext
    }
}
