/// Digits in base M packed into 32-bit words: word w holds digits w·c … w·c + c − 1 as Σ_j d_j · M^j, with
/// c the most digits whose largest value M^c − 1 fits 32 bits.
///
/// Packing is linear over the integers: when every digit of a sum of packed words stays below M, the sum's
/// words are the packed digit sums, with no carry from one digit into the next. With M = K·(2^b − 1) + 1,
/// K encodings of b-bit digits add up in Z_2^32 (under secure aggregation's masks) to words that unpack to
/// the K-fold digit sums: b bits plus just enough headroom for K summands, with no whole bit lost to it
/// (`q1` with 10 summands needs base 11: 9 digits per word, 3.56 bits per value).
public struct MixedRadixPacking: Sendable, Equatable {
    /// The base M.
    public let radix: UInt64
    /// Digits per word (c).
    public let digitsPerWord: Int

    /// Packing in base `radix`.
    /// - Throws: ``CodecError`` when `radix` is below 2 or above 2^32.
    public init(radix: UInt64) throws(CodecError) {
        guard radix >= 2, radix <= 1 << 32 else { throw CodecError("a base of \(radix) does not fit 32-bit words") }
        self.radix = radix
        var c = 0
        var power: UInt64 = 1
        while power <= (1 << 32) / radix {
            power *= radix
            c += 1
        }
        digitsPerWord = c
    }

    /// Packing of b-bit digits (base 2^b), 32/b per word.
    /// - Precondition: 1 ≤ `bits` ≤ 32.
    public init(bits: Int) {
        precondition((1...32).contains(bits), "1 to 32 bits per digit")
        radix = 1 << UInt64(bits)
        digitsPerWord = 32 / bits
    }

    /// Words that hold `count` digits.
    public func wordCount(digits count: Int) -> Int { (count + digitsPerWord - 1) / digitsPerWord }

    /// Packs `digits` (each below ``radix``).
    public func pack(_ digits: UnsafeBufferPointer<UInt32>) -> [UInt32] {
        let c = digitsPerWord, m = radix, count = digits.count
        return [UInt32](unsafeUninitializedCapacity: wordCount(digits: count)) { out, initialized in
            for w in 0..<wordCount(digits: count) {
                let first = w * c
                var word: UInt64 = 0
                for j in stride(from: min(first + c, count) - 1, through: first, by: -1) { word = word &* m &+ UInt64(digits[j]) }
                out[w] = UInt32(truncatingIfNeeded: word)
            }
            initialized = wordCount(digits: count)
        }
    }

    /// The first `count` digits of `words`, calling `body(index, digit)` for each.
    /// - Returns: false when a word holds more than its digits (a value of M^c or more): not a sum of
    ///   packings whose digit sums stay below M.
    /// - Precondition: `words` holds at least ``wordCount(digits:)`` words.
    @discardableResult
    public func unpack(_ words: ArraySlice<UInt32>, count: Int, _ body: (Int, UInt64) -> Void) -> Bool {
        precondition(words.count >= wordCount(digits: count), "too few words for \(count) digits")
        let c = digitsPerWord, m = radix
        var index = 0
        var clean = true
        if m & (m - 1) == 0 {
            let shift = UInt64(m.trailingZeroBitCount), mask = m - 1
            for word in words where index < count {
                var rest = UInt64(word)
                for _ in 0..<min(c, count - index) {
                    body(index, rest & mask)
                    rest >>= shift
                    index += 1
                }
                if rest != 0 { clean = false }
            }
            return clean
        }
        for word in words where index < count {
            var rest = UInt64(word)
            for _ in 0..<min(c, count - index) {
                let (q, r) = rest.quotientAndRemainder(dividingBy: m)
                body(index, r)
                rest = q
                index += 1
            }
            if rest != 0 { clean = false }
        }
        return clean
    }
}
