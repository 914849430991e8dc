import FlockCrypto
import Foundation

/// The binary container shared by model files and training checkpoints.
///
/// Layout (all integers little-endian):
/// ```
/// magic            8 bytes   "FLOCKMDL" (model) or "FLOCKCKP" (checkpoint)
/// format version   u32       1
/// header length    u32       H
/// header           H bytes   UTF-8 JSON (sorted keys)
/// section count    u32       S
/// S sections:      u16 name length, name (UTF-8), u64 element count N, N x f32
/// trailer          32 bytes  SHA-256 of every byte above
/// ```
/// Public so that other layers (the server's round checkpoints) store their state the same verified way.
/// The trailer is the content hash. ``read(path:magic:)`` checks it before it parses anything, so a
/// truncated, tampered or bit-flipped file is refused as a whole.
public struct Archive: Sendable {
    /// The container format version this build writes.
    public static let formatVersion: UInt32 = 1
    /// Refuse headers above this size (a model spec is a few kB).
    public static let maximumHeaderBytes = 16 << 20

    /// The JSON header.
    public var header: Data
    /// Named Float32 sections, in order.
    public var sections: [(name: String, values: [Float])]

    /// Creates an archive from a header and sections.
    public init(header: Data, sections: [(name: String, values: [Float])]) {
        self.header = header
        self.sections = sections
    }

    /// Serializes and returns the bytes and their SHA-256.
    public func encode(magic: String) -> (bytes: [UInt8], hash: SHA256.Digest) {
        precondition(magic.utf8.count == 8, "magic is 8 bytes")
        var out = [UInt8]()
        out.reserveCapacity(64 + header.count + sections.reduce(0) { $0 + 16 + $1.name.utf8.count + $1.values.count * 4 })
        out += Array(magic.utf8)
        append(&out, Archive.formatVersion)
        append(&out, UInt32(header.count))
        out += header
        append(&out, UInt32(sections.count))
        for section in sections {
            let name = Array(section.name.utf8)
            append(&out, UInt16(name.count))
            out += name
            append(&out, UInt64(section.values.count))
            section.values.withUnsafeBytes { raw in
                #if _endian(little)
                out += raw
                #else
                for v in section.values { append(&out, v.bitPattern) }
                #endif
            }
        }
        let hash = SHA256.hash(out)
        out += hash.bytes
        return (out, hash)
    }

    /// Writes the archive atomically (temp file in the same folder, fsync, rename, fsync of the folder).
    /// - Parameter permissions: the file's exact mode (0o600 for a server's data directory), or `nil` for the
    ///   umask's choice; see ``FileIO/writeAtomically(_:to:permissions:)``.
    /// - Returns: the content hash.
    @discardableResult
    public func write(path: String, magic: String, permissions: mode_t? = nil) throws(CoreError) -> SHA256.Digest {
        let (bytes, hash) = encode(magic: magic)
        try FileIO.writeAtomically(bytes, to: path, permissions: permissions)
        return hash
    }

    /// Reads and verifies an archive.
    /// - Throws: ``CoreError/Code/fileNotFound``, ``CoreError/Code/corruptFile`` (hash, magic, structure),
    ///   ``CoreError/Code/unsupportedVersion``.
    public static func read(path: String, magic: String, kind: String) throws(CoreError) -> (archive: Archive, hash: SHA256.Digest) {
        let bytes = try FileIO.read(path)
        return try decode(bytes, magic: magic, kind: kind, path: path)
    }

    /// Verifies and parses archive bytes.
    public static func decode(_ bytes: [UInt8], magic: String, kind: String, path: String) throws(CoreError) -> (archive: Archive, hash: SHA256.Digest) {
        guard bytes.count >= 8 + 4 + 4 + 4 + 32 else { throw CoreError(.corruptFile, "\(path): too short to be a Flock \(kind)") }
        guard Array(bytes[0..<8]) == Array(magic.utf8) else { throw CoreError(.corruptFile, "\(path): not a Flock \(kind) (wrong magic bytes)") }
        let body = bytes[0..<(bytes.count - 32)]
        let stored = SHA256.Digest(bytes: Array(bytes[(bytes.count - 32)...]))
        let actual = SHA256.hash(body)
        guard actual.constantTimeEquals(stored) else {
            throw CoreError(.corruptFile, "\(path): content hash mismatch: the \(kind) is damaged or was modified; refusing to load it")
        }
        var reader = Reader(bytes: body, position: 8, path: path)
        let version: UInt32 = try reader.integer()
        guard version <= formatVersion else {
            throw CoreError(.unsupportedVersion, "\(path): \(kind) format \(version) is newer than this build supports (\(formatVersion)); upgrade Flock")
        }
        let headerLength = Int(try reader.integer() as UInt32)
        guard headerLength <= maximumHeaderBytes else { throw CoreError(.corruptFile, "\(path): header too large") }
        let header = Data(try reader.take(headerLength))
        let count = Int(try reader.integer() as UInt32)
        var sections = [(name: String, values: [Float])]()
        for _ in 0..<count {
            let nameLength = Int(try reader.integer() as UInt16)
            let name = String(decoding: try reader.take(nameLength), as: UTF8.self)
            let n = try reader.integer() as UInt64
            guard n <= UInt64(reader.remaining / 4) else { throw CoreError(.corruptFile, "\(path): section '\(name)' runs past the end") }
            let raw = try reader.take(Int(n) * 4)
            var values = [Float](repeating: 0, count: Int(n))
            values.withUnsafeMutableBytes { dst in
                raw.withUnsafeBytes { src in dst.copyMemory(from: src) }
            }
            #if !_endian(little)
            values = values.map { Float(bitPattern: UInt32(littleEndian: $0.bitPattern)) }
            #endif
            sections.append((name, values))
        }
        guard reader.remaining == 0 else { throw CoreError(.corruptFile, "\(path): trailing bytes after the last section") }
        return (Archive(header: header, sections: sections), actual)
    }

    /// The values of a named section.
    /// - Throws: ``CoreError/Code/corruptFile`` when it is missing.
    public func section(_ name: String, path: String) throws(CoreError) -> [Float] {
        guard let s = sections.first(where: { $0.name == name }) else {
            throw CoreError(.corruptFile, "\(path): missing section '\(name)'")
        }
        return s.values
    }

    private func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { out += $0 }
    }

    private struct Reader {
        let bytes: ArraySlice<UInt8>
        var position: Int
        let path: String
        var remaining: Int { bytes.endIndex - position }

        mutating func take(_ n: Int) throws(CoreError) -> ArraySlice<UInt8> {
            guard n >= 0, n <= remaining else { throw CoreError(.corruptFile, "\(path): truncated structure") }
            defer { position += n }
            return bytes[position..<(position + n)]
        }

        mutating func integer<T: FixedWidthInteger>() throws(CoreError) -> T {
            let raw = try take(MemoryLayout<T>.size)
            var value = T.zero
            for (i, b) in raw.enumerated() { value |= T(b) << (8 * i) }
            return value
        }
    }
}
