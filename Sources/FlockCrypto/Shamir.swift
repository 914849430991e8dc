/// Shamir t-of-n secret sharing (Shamir 1979, "How to share a secret") of byte strings, byte-wise over
/// GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1.
///
/// Each byte of the secret is the constant term of its own random polynomial of degree t - 1; share
/// number x (1...255) holds every polynomial's value at x. Any t shares give the secret by Lagrange
/// interpolation at 0; t - 1 shares are uniformly distributed whatever the secret (information-theoretic
/// secrecy). Up to 255 shares per secret, which bounds a secure-aggregation neighbourhood to 255 edges.
///
/// Share wire form: `x (1 byte) || y (one byte per secret byte)`.
public enum Shamir {
    /// One share: its x coordinate (1...255) and one value per secret byte.
    public struct Share: Sendable, Equatable, Codable {
        /// Evaluation point, 1...255.
        public let x: UInt8
        /// The polynomials' values at `x`.
        public let y: [UInt8]

        /// Creates a share.
        public init(x: UInt8, y: [UInt8]) {
            self.x = x
            self.y = y
        }

        /// `x || y`.
        public var bytes: [UInt8] { [x] + y }

        /// Parses `x || y`.
        /// - Throws: ``CryptoError/Kind/malformedInput`` for an empty buffer or x = 0.
        public init(bytes: [UInt8]) throws(CryptoError) {
            guard let first = bytes.first, first != 0 else { throw CryptoError(.malformedInput, "a share starts with its x in 1...255") }
            x = first
            y = Array(bytes.dropFirst())
        }
    }

    /// Splits `secret` into `count` shares (x = 1...count), any `threshold` of which reconstruct it.
    /// - Throws: ``CryptoError/Kind/malformedInput`` unless 1 <= threshold <= count <= 255.
    public static func split(_ secret: SecretBytes, threshold: Int, count: Int) throws(CryptoError) -> [Share] {
        guard threshold >= 1, threshold <= count, count <= 255 else {
            throw CryptoError(.malformedInput, "Shamir needs 1 <= threshold (\(threshold)) <= shares (\(count)) <= 255")
        }
        let length = secret.count
        // coefficients[k][i]: coefficient of x^k of byte i's polynomial; k = 0 is the secret.
        var coefficients = [secret.bytes]
        for _ in 1..<threshold { coefficients.append(SecureRandom.bytes(length)) }
        defer { for k in coefficients.indices { for i in coefficients[k].indices { coefficients[k][i] = 0 } } }
        return (1...count).map { x in
            var y = [UInt8](repeating: 0, count: length)
            for i in 0..<length {
                // Horner's rule from the highest coefficient.
                var value: UInt8 = 0
                for k in stride(from: threshold - 1, through: 0, by: -1) {
                    value = GF256.multiply(value, UInt8(x)) ^ coefficients[k][i]
                }
                y[i] = value
            }
            return Share(x: UInt8(x), y: y)
        }
    }

    /// The secret of `shares` (the first `threshold` of them are used).
    /// - Throws: ``CryptoError/Kind/notEnoughShares`` for fewer than `threshold` shares, repeated x values,
    ///   or shares of different lengths.
    public static func combine(_ shares: [Share], threshold: Int) throws(CryptoError) -> SecretBytes {
        guard threshold >= 1, shares.count >= threshold else {
            throw CryptoError(.notEnoughShares, "\(shares.count) shares, \(threshold) needed")
        }
        let used = Array(shares.prefix(threshold))
        guard Set(used.map(\.x)).count == used.count, !used.contains(where: { $0.x == 0 }),
              Set(used.map(\.y.count)).count == 1 else {
            throw CryptoError(.notEnoughShares, "shares must have distinct x in 1...255 and equal lengths")
        }
        // Lagrange basis at 0: l_j = prod_{m != j} x_m / (x_m - x_j); subtraction is XOR in GF(2^8).
        let basis = used.indices.map { j in
            used.indices.reduce(UInt8(1)) { product, m in
                m == j ? product : GF256.multiply(product, GF256.divide(used[m].x, used[m].x ^ used[j].x))
            }
        }
        var secret = [UInt8](repeating: 0, count: used[0].y.count)
        for (j, share) in used.enumerated() {
            for i in secret.indices { secret[i] ^= GF256.multiply(basis[j], share.y[i]) }
        }
        defer { for i in secret.indices { secret[i] = 0 } }
        return SecretBytes(secret)
    }
}

/// Arithmetic in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1, through log and exp tables of the generator 3.
enum GF256 {
    private static let tables: (log: [UInt8], exp: [UInt8]) = {
        var log = [UInt8](repeating: 0, count: 256)
        var exp = [UInt8](repeating: 0, count: 510)
        var value: UInt8 = 1
        for power in 0..<255 {
            exp[power] = value
            log[Int(value)] = UInt8(power)
            // value *= 3: value ^ xtime(value).
            let doubled = value << 1 ^ (value & 0x80 != 0 ? 0x1B : 0)
            value ^= doubled
        }
        for power in 255..<510 { exp[power] = exp[power - 255] }
        return (log, exp)
    }()

    static func multiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
        guard a != 0, b != 0 else { return 0 }
        return tables.exp[Int(tables.log[Int(a)]) + Int(tables.log[Int(b)])]
    }

    static func divide(_ a: UInt8, _ b: UInt8) -> UInt8 {
        precondition(b != 0, "division by zero in GF(2^8)")
        guard a != 0 else { return 0 }
        return tables.exp[Int(tables.log[Int(a)]) + 255 - Int(tables.log[Int(b)])]
    }
}
