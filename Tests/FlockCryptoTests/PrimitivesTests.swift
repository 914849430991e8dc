import FlockCrypto
import Testing

/// The libsodium wrappers against published test vectors (RFC 7748, RFC 8032, RFC 7693) and against
/// Python's `cryptography` package for the ChaCha20 keystream, plus the properties the protocol relies on.
@Suite struct PrimitivesTests {
    static func hex(_ text: String) -> [UInt8] { Hex.decode(text)! }

    @Test func x25519MatchesRFC7748AndBothSidesDeriveOneKey() throws {
        let alice = try X25519.KeyPair(privateKey: SecretBytes(Self.hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")))
        let bob = try X25519.KeyPair(privateKey: SecretBytes(Self.hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")))
        #expect(alice.publicKey.bytes == Self.hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
        #expect(bob.publicKey.bytes == Self.hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
        let ab = try alice.sharedKey(with: bob.publicKey, context: "mask")
        let ba = try bob.sharedKey(with: alice.publicKey, context: "mask")
        #expect(ab == ba && ab.count == 32)
        // The derivation is BLAKE2b over context, the RFC's shared secret and both public keys in order.
        let rfcShared = Self.hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        let expected = BLAKE2b.hash(Array("mask".utf8) + [0] + rfcShared + alice.publicKey.bytes + bob.publicKey.bytes)
        #expect(ab.bytes == expected)
        #expect(try alice.sharedKey(with: bob.publicKey, context: "share") != ab)
        // A low-order point (here: zero) gives no key.
        #expect(throws: CryptoError.self) { try alice.sharedKey(with: try X25519.PublicKey(bytes: [UInt8](repeating: 0, count: 32)), context: "mask") }
        #expect(throws: CryptoError.self) { try X25519.PublicKey(bytes: [1, 2, 3]) }
    }

    @Test func blake2bMatchesRFC7693() {
        #expect(BLAKE2b.hash(Array("abc".utf8), outputBytes: 64) == Self.hex(
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"))
        #expect(BLAKE2b.hash(Array("abc".utf8)) == Self.hex("bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"))
    }

    @Test func ed25519MatchesRFC8032AndRefusesAlteredInput() throws {
        let pair = try Ed25519.KeyPair(seed: SecretBytes(Self.hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")))
        #expect(pair.publicKey.bytes == Self.hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"))
        let signature = pair.sign([])
        #expect(signature == Self.hex(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"))
        try pair.publicKey.verify(signature, of: [])
        #expect(throws: CryptoError.self) { try pair.publicKey.verify(signature, of: [0]) }
        var altered = signature
        altered[5] ^= 1
        #expect(throws: CryptoError.self) { try pair.publicKey.verify(altered, of: []) }
        #expect(throws: CryptoError.self) { try Ed25519.KeyPair.generate().publicKey.verify(signature, of: []) }
    }

    @Test func aeadRoundTripsAndRefusesTamperingAndOtherContexts() throws {
        let key = SecretBytes.random(count: 32)
        let message = Array("share of edge 7 for edge 12".utf8)
        let box = try AEAD.seal(message, key: key, associatedData: [1, 2])
        #expect(box.count == message.count + 40)
        #expect(try AEAD.open(box, key: key, associatedData: [1, 2]) == message)
        // Two seals of one message differ (random nonces).
        #expect(try AEAD.seal(message, key: key, associatedData: [1, 2]) != box)
        for i in [0, 30, box.count - 1] {
            var tampered = box
            tampered[i] ^= 0x40
            #expect(throws: CryptoError(.authenticationFailed, "the sealed box does not authenticate (altered, or another key or context)")) {
                try AEAD.open(tampered, key: key, associatedData: [1, 2])
            }
        }
        #expect(throws: CryptoError.self) { try AEAD.open(box, key: key, associatedData: [1, 3]) }
        #expect(throws: CryptoError.self) { try AEAD.open(box, key: SecretBytes.random(count: 32), associatedData: [1, 2]) }
        #expect(throws: CryptoError.self) { try AEAD.open(Array(box.prefix(39)), key: key) }
    }

    @Test func maskStreamIsChaCha20AndMasksCancel() {
        let seed = SecretBytes((0..<32).map { UInt8($0) })
        let words = MaskStream.words(seed: seed, count: 4_200)
        // Python's `cryptography` ChaCha20 (counter 0, zero nonce), key 00 01 ... 1f, read as UInt32 LE.
        #expect(Array(words.prefix(4)) == [0x7d2b_fd39, 0x6a19_c5d9, 0x7703_bd8d, 0x494a_dcb8])
        #expect(Array(words[4_095...4_097]) == [0x7096_311a, 0xc324_1118, 0x7bcc_131a])
        #expect(words[4_199] == 0x8c93_6563)
        // Adding then subtracting one stream leaves any vector unchanged (wrapping arithmetic).
        let original = (0..<10_001).map { UInt32(truncatingIfNeeded: $0 &* 2_654_435_761) }
        var masked = original
        MaskStream.add(seed: seed, into: &masked, sign: 1)
        #expect(masked != original)
        MaskStream.add(seed: seed, into: &masked, sign: -1)
        #expect(masked == original)
    }

    @Test func libcryptoAndLibsodiumExpandTheSameMaskWords() {
        #expect(MaskStream.Backend.libcrypto.isAvailable, "Debian's libcrypto provides ChaCha20")
        #expect(MaskStream.Backend.fastest == .libcrypto)
        // Several terms of both signs, lengths around the 4,096-word block and not multiples of 16, and the
        // vector split over threads so ranges start their streams at a block counter other than 0.
        var rng = SystemRandomNumberGenerator()
        for (count, threads) in [(1, 1), (15, 1), (4_095, 1), (4_097, 2), (200_003, 2), (200_003, 5)] {
            let terms = (0..<4).map { i in MaskStream.Term(seed: SecretBytes.random(count: 32), sign: i % 2 == 0 ? 1 : -1) }
            let original = (0..<count).map { _ in UInt32.random(in: .min ... .max, using: &rng) }
            var bySodium = original
            var byLibCrypto = original
            MaskStream.add(terms, into: &bySodium, threads: threads, backend: .libsodium)
            MaskStream.add(terms, into: &byLibCrypto, threads: threads, backend: .libcrypto)
            #expect(bySodium == byLibCrypto, "count \(count), threads \(threads)")
            #expect(count < 16 || bySodium != original)
        }
        // The known answer above holds for libsodium too.
        let seed = SecretBytes((0..<32).map { UInt8($0) })
        var words = [UInt32](repeating: 0, count: 4_098)
        MaskStream.add([MaskStream.Term(seed: seed, sign: 1)], into: &words, backend: .libsodium)
        #expect(Array(words[4_095...4_097]) == [0x7096_311a, 0xc324_1118, 0x7bcc_131a])
    }

    @Test func anyThresholdOfShamirSharesReconstructsAndFewerDoNot() throws {
        let secret = SecretBytes.random(count: 32)
        for (threshold, count) in [(1, 1), (2, 3), (5, 9), (171, 255)] {
            let shares = try Shamir.split(secret, threshold: threshold, count: count)
            #expect(shares.map(\.x) == (1...count).map { UInt8($0) })
            var rng = SystemRandomNumberGenerator()
            for _ in 0..<3 {
                let subset = Array(shares.shuffled(using: &rng).prefix(threshold))
                #expect(try Shamir.combine(subset, threshold: threshold) == secret)
                let parsed = try subset.map { share throws(CryptoError) in try Shamir.Share(bytes: share.bytes) }
                #expect(try Shamir.combine(parsed, threshold: threshold) == secret)
            }
            #expect(throws: CryptoError.self) { try Shamir.combine(Array(shares.prefix(threshold - 1)), threshold: threshold) }
            if threshold >= 2 {
                // Interpolating t - 1 shares as if they were enough gives something else.
                #expect(try Shamir.combine(Array(shares.prefix(threshold - 1)), threshold: threshold - 1) != secret)
            }
        }
        let shares = try Shamir.split(secret, threshold: 2, count: 3)
        #expect(throws: CryptoError.self) { try Shamir.combine([shares[0], shares[0]], threshold: 2) }
        #expect(throws: CryptoError.self) { try Shamir.split(secret, threshold: 3, count: 256) }
        #expect(throws: CryptoError.self) { try Shamir.split(secret, threshold: 4, count: 3) }
        #expect(throws: CryptoError.self) { try Shamir.Share(bytes: [0, 1, 2]) }
    }
}
