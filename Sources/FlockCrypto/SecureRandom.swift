internal import CSodium

/// Unpredictable bytes from the operating system's generator (libsodium's `randombytes_buf`), for tokens,
/// session ids and keys.
public enum SecureRandom {
    /// `count` random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0, "cannot draw a negative number of bytes")
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: count)
        if count > 0 { out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) } }
        return out
    }

    /// A random token of `byteCount` bytes, as lowercase hex.
    public static func token(byteCount: Int = 32) -> String { Hex.encode(bytes(byteCount)) }
}
