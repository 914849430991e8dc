import FlockCore
import Foundation

/// Seeded mutations of a valid input, for the fuzz tests of every decoder: bit flips, overwritten, inserted, deleted
/// and repeated bytes, truncations, and numbers replaced by extreme ones (huge, negative, overflowing, NaN).
///
/// Each test runs ``iterations`` mutated inputs (2,000 unless `FLOCK_FUZZ_ITERATIONS=N` asks for more, to run
/// longer by hand); a failure names the seed and iteration that reproduce it.
public struct Mutator {
    /// How many inputs a fuzz test runs.
    public static let iterations: Int = {
        let asked = ProcessInfo.processInfo.environment["FLOCK_FUZZ_ITERATIONS"].flatMap { Int($0) }
        return max(asked ?? 2_000, 1)
    }()

    /// Tokens that break parsers: extreme numbers, signs, separators, quotes and escapes.
    public static let tokens: [String] = [
        "-1", "0", "-0", "1e308", "-1e308", "1e-320", "nan", "NaN", "inf", "-inf", "9223372036854775807",
        "9223372036854775808", "-9223372036854775808", "18446744073709551616", "99999999999999999999999999",
        "4294967296", "2147483648", "1e10", "0x10", "+", "-", ".", "e", "1e", "\"", "\\", "\\u0000", ",", ",,", "\n",
        "\r\n", "\t", " ", "[", "]", "{", "}", "=", "#", "\u{0}", "\u{FEFF}", "é", "\u{10FFFF}", "null", "true", "[]", "{}",
    ]

    private var rng: SeededGenerator

    /// A mutator drawing from `seed`.
    public init(seed: UInt64) { rng = SeededGenerator(seed: seed) }

    /// `input` with 1 to 4 random mutations.
    public mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var bytes = input
        for _ in 0...rng.nextIndex(below: 4) { mutateOnce(&bytes) }
        return bytes
    }

    private mutating func mutateOnce(_ bytes: inout [UInt8]) {
        let position = bytes.isEmpty ? 0 : rng.nextIndex(below: bytes.count + 1)
        switch rng.nextIndex(below: 8) {
        case 0 where !bytes.isEmpty:  // flip a bit
            let i = min(position, bytes.count - 1)
            bytes[i] ^= UInt8(1) << UInt8(rng.nextIndex(below: 8))
        case 1 where !bytes.isEmpty:  // overwrite a byte
            bytes[min(position, bytes.count - 1)] = UInt8(truncatingIfNeeded: rng.next())
        case 2:  // truncate
            bytes.removeLast(bytes.count - position)
        case 3:  // insert random bytes
            let count = 1 + rng.nextIndex(below: 8)
            bytes.insert(contentsOf: (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: position)
        case 4 where !bytes.isEmpty:  // delete a range
            let end = min(bytes.count, position + 1 + rng.nextIndex(below: 16))
            bytes.removeSubrange(min(position, bytes.count - 1)..<end)
        case 5 where position < bytes.count:  // repeat a range
            let end = min(bytes.count, position + 1 + rng.nextIndex(below: 64))
            let range = Array(bytes[position..<end])
            bytes.insert(contentsOf: range, at: end)
        case 6:  // replace a number with an extreme one
            replaceNumber(&bytes, near: position)
        default:  // insert a token
            bytes.insert(contentsOf: Array(Self.tokens[rng.nextIndex(below: Self.tokens.count)].utf8), at: position)
        }
    }

    /// Replaces the run of digits (with its sign) at or after `position` by an extreme token.
    private mutating func replaceNumber(_ bytes: inout [UInt8], near position: Int) {
        func isDigit(_ b: UInt8) -> Bool { (48...57).contains(b) }
        guard let start = bytes[min(position, bytes.count)...].firstIndex(where: isDigit) ?? bytes.firstIndex(where: isDigit) else {
            return
        }
        var from = start
        if from > 0, bytes[from - 1] == UInt8(ascii: "-") { from -= 1 }
        var end = start
        while end < bytes.count, isDigit(bytes[end]) || bytes[end] == UInt8(ascii: ".") { end += 1 }
        let numbers = Self.tokens.prefix(17)
        bytes.replaceSubrange(from..<end, with: Array(numbers[numbers.startIndex + rng.nextIndex(below: numbers.count)].utf8))
    }

    /// A random index below `bound`.
    public mutating func index(below bound: Int) -> Int { rng.nextIndex(below: bound) }
}
