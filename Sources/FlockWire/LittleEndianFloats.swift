/// The `f32` codec's payload: 32-bit IEEE floats, little-endian, back to back (and, with the same layout,
/// the UInt32 words of a masked ring vector).
public enum LittleEndianFloats {
    /// The bytes of `words`, little-endian.
    public static func encodeWords(_ words: [UInt32]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: words.count * 4)
        out.withUnsafeMutableBytes { raw in
            for (i, w) in words.enumerated() { raw.storeBytes(of: w.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        }
        return out
    }

    /// The little-endian words in `bytes` (a trailing partial word is ignored).
    public static func decodeWords(_ bytes: [UInt8]) -> [UInt32] {
        let count = bytes.count / 4
        return bytes.withUnsafeBytes { raw in
            [UInt32](unsafeUninitializedCapacity: count) { out, initialized in
                for i in 0..<count { out[i] = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)) }
                initialized = count
            }
        }
    }

    /// The bytes of `values`.
    public static func encode(_ values: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 4)
        out.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        }
        return out
    }

    /// The floats in `bytes` (whose count must be a multiple of 4; a trailing partial value is ignored).
    public static func decode(_ bytes: [UInt8]) -> [Float] {
        let count = bytes.count / 4
        return bytes.withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: count) { out, initialized in
                for i in 0..<count {
                    out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                }
                initialized = count
            }
        }
    }
}
