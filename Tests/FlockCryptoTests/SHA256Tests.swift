import FlockCrypto
import Testing

/// FIPS 180-2 / NIST test vectors for SHA-256.
@Suite struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
    ])
    func knownVectors(input: String, expected: String) {
        #expect(SHA256.hash(Array(input.utf8)).hex == expected)
    }

    @Test func incrementalEqualsOneShot() {
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var h = SHA256()
        h.update(data[0..<1234])
        h.update(data[1234...])
        #expect(h.finalize() == SHA256.hash(data))
    }

    @Test func hexRoundTripAndConstantTimeCompare() {
        let d = SHA256.hash(Array("abc".utf8))
        #expect(SHA256.Digest(hex: d.hex) == d)
        #expect(SHA256.Digest(hex: "zz") == nil)
        #expect(d.constantTimeEquals(SHA256.hash(Array("abc".utf8))))
        #expect(!d.constantTimeEquals(SHA256.hash(Array("abd".utf8))))
    }
}
