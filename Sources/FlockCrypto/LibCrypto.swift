internal import CLibCrypto

/// OpenSSL libcrypto's ChaCha20 (RFC 8439: 32-byte key, 32-bit block counter, 96-bit nonce), the one
/// libcrypto primitive Flock uses. It is the same keystream as libsodium's `crypto_stream_chacha20_ietf`,
/// but libcrypto has an 8-block AVX2 path: 3.2-3.3 GB/s per core on this machine against libsodium's
/// 2.2 (16 KiB calls, `flock-server bench secagg` prints both). Mask expansion is where secure aggregation
/// spends its time, so ``MaskStream`` uses this when libcrypto provides ChaCha20.
///
/// No pointer or OpenSSL type leaves this file.
final class LibCryptoChaCha20 {
    /// libcrypto's ChaCha20 cipher, fetched once per process; nil when the loaded providers lack it (a
    /// FIPS-only configuration, for one), and ``MaskStream`` then uses libsodium.
    private static let cipher: SendableCipher? = {
        guard let cipher = EVP_CIPHER_fetch(nil, "ChaCha20", nil) else { return nil }
        return SendableCipher(pointer: cipher)
    }()

    /// True when libcrypto can produce ChaCha20 here.
    static var isAvailable: Bool { cipher != nil }

    /// Bytes of zeros the cipher reads as plaintext, so its ciphertext is the keystream.
    static let maximumCallBytes = 16_384
    private static let zeros: SendableZeros = {
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: maximumCallBytes)
        buffer.initialize(repeating: 0, count: maximumCallBytes)
        return SendableZeros(pointer: buffer)
    }()

    private let context: OpaquePointer

    /// A keystream for `key` (32 bytes), zero nonce, starting at block `counter` (64 bytes a block).
    /// Returns nil when libcrypto lacks ChaCha20 or refuses the key.
    init?(key: UnsafeRawBufferPointer, counter: UInt32) {
        precondition(key.count == 32, "a ChaCha20 key has 32 bytes")
        guard let cipher = Self.cipher, let context = EVP_CIPHER_CTX_new() else { return nil }
        // The 16-byte IV of libcrypto's ChaCha20 is the little-endian block counter, then the nonce.
        var iv = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: counter.littleEndian) { iv.replaceSubrange(0..<4, with: $0) }
        let ok = iv.withUnsafeBufferPointer { ivBytes in
            EVP_EncryptInit_ex(context, cipher.pointer, nil, key.baseAddress!.assumingMemoryBound(to: UInt8.self), ivBytes.baseAddress!)
        }
        guard ok == 1 else {
            EVP_CIPHER_CTX_free(context)
            return nil
        }
        self.context = context
    }

    deinit {
        // Frees the context; libcrypto clears the key schedule it holds.
        EVP_CIPHER_CTX_free(context)
    }

    /// Writes the next `count` bytes of keystream (at most ``maximumCallBytes``) to `output`.
    func next(_ count: Int, into output: UnsafeMutableRawPointer) {
        precondition(count >= 0 && count <= Self.maximumCallBytes, "at most 16 KiB of keystream a call")
        var written: Int32 = 0
        let ok = EVP_EncryptUpdate(context, output.assumingMemoryBound(to: UInt8.self), &written, Self.zeros.pointer, Int32(count))
        precondition(ok == 1 && Int(written) == count, "libcrypto's ChaCha20 failed")
    }
}

/// libcrypto's fetched cipher: immutable and reference-counted by libcrypto, safe to share between threads.
private struct SendableCipher: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// A buffer of zeros written once, before it is shared, and only read afterwards.
private struct SendableZeros: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt8>
}
