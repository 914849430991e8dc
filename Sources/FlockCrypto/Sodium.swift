internal import CSodium

/// One-time libsodium initialization, and small helpers shared by the wrappers.
enum Sodium {
    private static let initialized: Bool = {
        sodium_init() >= 0
    }()

    /// Initializes libsodium once per process; every wrapper calls this before its first primitive.
    static func ensureInitialized() {
        precondition(initialized, "libsodium failed to initialize")
    }
}

/// Constant-time comparison of byte strings.
public enum ConstantTime {
    /// True when `a` and `b` have the same length and contents; the time taken depends only on the length.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        Sodium.ensureInitialized()
        return a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in sodium_memcmp(pa.baseAddress!, pb.baseAddress!, pa.count) == 0 }
        }
    }
}

/// Lowercase hexadecimal encoding.
public enum Hex {
    /// Encodes bytes as lowercase hex.
    public static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes hex (either case); nil on odd length or a non-hex character.
    public static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
