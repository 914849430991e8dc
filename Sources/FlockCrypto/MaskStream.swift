internal import CSodium
import Dispatch
import FlockParallel

/// The pseudorandom generator of secure aggregation masks: a 32-byte seed expanded by the ChaCha20 stream
/// cipher (RFC 8439, zero nonce, block counter from 0) into little-endian UInt32 words. Both parties of a
/// pairwise mask expand the same seed to the same words.
///
/// Two implementations of the same keystream are wrapped (``Backend``): OpenSSL's libcrypto, about 1.5x
/// faster here, is used when it provides ChaCha20, libsodium otherwise; their words are identical, so
/// edges and servers may use either.
///
/// One seed gives at most 2^32 blocks (256 GiB); masks are far shorter.
public enum MaskStream {
    /// Which library expands the keystream. Both give the same words.
    public enum Backend: String, Sendable, CaseIterable {
        /// OpenSSL's libcrypto (`EVP_chacha20`, with an 8-block AVX2 path).
        case libcrypto
        /// libsodium's `crypto_stream_chacha20_ietf_xor_ic`.
        case libsodium

        /// libcrypto when it provides ChaCha20 on this machine, else libsodium.
        public static var fastest: Backend { LibCryptoChaCha20.isAvailable ? .libcrypto : .libsodium }

        /// False only for libcrypto when its loaded providers lack ChaCha20.
        public var isAvailable: Bool { self == .libsodium || LibCryptoChaCha20.isAvailable }
    }

    /// Seed bytes.
    public static let seedBytes = 32

    /// One stream to add (`sign` 1) or subtract (`sign` -1).
    public struct Term: Sendable {
        /// The stream's seed.
        public let seed: SecretBytes
        /// 1 or -1.
        public let sign: Int

        /// Creates a term.
        /// - Precondition: `seed` has 32 bytes and `sign` is 1 or -1.
        public init(seed: SecretBytes, sign: Int) {
            precondition(seed.count == MaskStream.seedBytes, "a mask seed has 32 bytes")
            precondition(sign == 1 || sign == -1, "sign is 1 or -1")
            self.seed = seed
            self.sign = sign
        }
    }

    /// The first `count` words of the stream of `seed`.
    public static func words(seed: SecretBytes, count: Int) -> [UInt32] {
        var out = [UInt32](repeating: 0, count: count)
        add([Term(seed: seed, sign: 1)], into: &out)
        return out
    }

    /// Adds (`sign` 1) or subtracts (`sign` -1) the stream of `seed` into `vector`, word by word, wrapping
    /// modulo 2^32.
    public static func add(seed: SecretBytes, into vector: inout [UInt32], sign: Int) {
        add([Term(seed: seed, sign: sign)], into: &vector)
    }

    /// Adds every term's stream into `vector`, modulo 2^32, in one pass: the vector is walked in blocks of
    /// 16 KiB and each block takes all the streams while it is in cache. `threads` > 1 splits the vector
    /// into that many ranges expanded at once (each range starts its streams at its own block counter).
    /// - Precondition: `backend.isAvailable`.
    public static func add(_ terms: [Term], into vector: inout [UInt32], threads: Int = 1, backend: Backend = .fastest) {
        guard !terms.isEmpty, !vector.isEmpty else { return }
        precondition(backend.isAvailable, "libcrypto provides no ChaCha20 here")
        Sodium.ensureInitialized()
        let blocks = (vector.count + blockWords - 1) / blockWords
        let parts = max(1, min(threads, blocks))
        vector.withUnsafeMutableBufferPointer { buffer in
            let base = SendablePointer(buffer.baseAddress!)
            let count = buffer.count
            WorkerPool.shared.run(parts) { p in
                let first = blocks * p / parts * blockWords
                let end = min(count, blocks * (p + 1) / parts * blockWords)
                addRange(terms, into: base.pointer, words: first..<end, backend: backend)
            }
        }
    }

    /// A library's raw ChaCha20 keystream rate on this machine, in bytes per second on one core: the best
    /// of 3 runs over `bytes` bytes, one key, generated in 16 KiB calls (for benchmarks: the limit mask
    /// expansion can approach).
    /// - Precondition: `backend.isAvailable`.
    public static func keystreamBytesPerSecond(bytes: Int = 64 << 20, backend: Backend = .libsodium) -> Double {
        precondition(backend.isAvailable, "libcrypto provides no ChaCha20 here")
        Sodium.ensureInitialized()
        let chunk = LibCryptoChaCha20.maximumCallBytes
        let calls = max(1, bytes / chunk)
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: chunk)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 0, count: chunk)
        let key = [UInt8](repeating: 7, count: 32)
        let nonce = [UInt8](repeating: 0, count: Int(crypto_stream_chacha20_ietf_NONCEBYTES))
        var best = 0.0
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            switch backend {
            case .libsodium:
                for c in 0..<calls {
                    _ = crypto_stream_chacha20_ietf_xor_ic(buffer, buffer, UInt64(chunk), nonce, UInt32(c * chunk / 64), key)
                }
            case .libcrypto:
                let stream = key.withUnsafeBytes { LibCryptoChaCha20(key: $0, counter: 0) }!
                for _ in 0..<calls { stream.next(chunk, into: buffer) }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = max(best, Double(calls * chunk) / seconds)
        }
        return best
    }

    /// Words generated per keystream call: 256 ChaCha20 blocks of 64 bytes (16 KiB).
    private static let blockWords = LibCryptoChaCha20.maximumCallBytes / 4

    /// Adds the streams' words `range` into `vector[range]`. `range.lowerBound` is a multiple of 16.
    /// libcrypto keeps one keystream per term for the whole range and writes it straight into the block
    /// (it reads a shared buffer of zeros); libsodium is called per block at the block's counter, on a
    /// cleared block.
    private static func addRange(_ terms: [Term], into vector: UnsafeMutablePointer<UInt32>, words range: Range<Int>, backend: Backend) {
        let streams = backend == .libsodium ? nil : terms.map { term in
            term.seed.withUnsafe { key in LibCryptoChaCha20(key: UnsafeRawBufferPointer(key), counter: UInt32(range.lowerBound / 16)) }!
        }
        let nonce = [UInt8](repeating: 0, count: Int(crypto_stream_chacha20_ietf_NONCEBYTES))
        let block = UnsafeMutablePointer<UInt32>.allocate(capacity: blockWords)
        defer { block.deallocate() }
        var start = range.lowerBound
        while start < range.upperBound {
            let n = min(blockWords, range.upperBound - start)
            let out = vector + start
            for (t, term) in terms.enumerated() {
                if let streams {
                    streams[t].next(n * 4, into: block)
                } else {
                    block.update(repeating: 0, count: n)
                    let bytes = UnsafeMutableRawPointer(block).assumingMemoryBound(to: UInt8.self)
                    nonce.withUnsafeBufferPointer { iv in
                        term.seed.withUnsafe { key in
                            _ = crypto_stream_chacha20_ietf_xor_ic(bytes, bytes, UInt64(n * 4), iv.baseAddress!, UInt32(start / 16), key.baseAddress!)
                        }
                    }
                }
                if term.sign == 1 {
                    for i in 0..<n { out[i] &+= UInt32(littleEndian: block[i]) }
                } else {
                    for i in 0..<n { out[i] &-= UInt32(littleEndian: block[i]) }
                }
            }
            start += n
        }
    }
}

/// A pointer handed to the workers of ``MaskStream/add(_:into:threads:backend:)``.
///
/// @unchecked Sendable: each worker writes its own disjoint range, and `WorkerPool.run` joins them all
/// before the buffer's owner reads it again.
private struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt32>
    init(_ pointer: UnsafeMutablePointer<UInt32>) { self.pointer = pointer }
}
