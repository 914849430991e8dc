internal import CSodium

/// The pseudorandom generator of secure aggregation masks: a 32-byte seed expanded by the ChaCha20 stream
/// cipher (RFC 8439, libsodium's `crypto_stream_chacha20_ietf`, zero nonce, block counter from 0) into
/// little-endian UInt32 words. Both parties of a pairwise mask expand the same seed to the same words.
///
/// One seed gives at most 2^32 blocks (256 GiB); masks are far shorter.
public enum MaskStream {
    /// Seed bytes.
    public static let seedBytes = 32

    /// The first `count` words of the stream of `seed`.
    public static func words(seed: SecretBytes, count: Int) -> [UInt32] {
        var out = [UInt32](repeating: 0, count: count)
        add(seed: seed, into: &out, sign: 1)
        return out
    }

    /// Adds (`sign` 1) or subtracts (`sign` -1) the stream of `seed` into `vector`, word by word, wrapping
    /// modulo 2^32. Generated in blocks of 16 KiB so that no second vector-sized buffer is needed.
    public static func add(seed: SecretBytes, into vector: inout [UInt32], sign: Int) {
        precondition(seed.count == seedBytes, "a mask seed has 32 bytes")
        precondition(sign == 1 || sign == -1, "sign is 1 or -1")
        Sodium.ensureInitialized()
        let blockWords = 4_096
        var block = [UInt32](repeating: 0, count: blockWords)
        let nonce = [UInt8](repeating: 0, count: Int(crypto_stream_chacha20_ietf_NONCEBYTES))
        var start = 0
        while start < vector.count {
            let n = min(blockWords, vector.count - start)
            // Blocks of 64 bytes: 4,096 words are 256 ChaCha20 blocks, so block counters continue exactly.
            let counter = UInt32(start / 16)
            block.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            block.withUnsafeMutableBytes { raw in
                nonce.withUnsafeBufferPointer { iv in
                    seed.withUnsafe { k in
                        _ = crypto_stream_chacha20_ietf_xor_ic(
                            raw.baseAddress!.assumingMemoryBound(to: UInt8.self), raw.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            UInt64(n * 4), iv.baseAddress!, counter, k.baseAddress!)
                    }
                }
            }
            vector.withUnsafeMutableBufferPointer { v in
                if sign == 1 {
                    for i in 0..<n { v[start + i] &+= UInt32(littleEndian: block[i]) }
                } else {
                    for i in 0..<n { v[start + i] &-= UInt32(littleEndian: block[i]) }
                }
            }
            start += n
        }
    }
}
