import CZlib

/// The lossless stage `+deflate` over a plain codec's payload (RFC 1950 zlib streams, through libzlib):
/// what the lossy codec left redundant (the skewed digits of `q8`, the small index gaps of `topk`, the
/// exponent bytes of `f32`) is entropy coded, and the stage keeps whichever form is smaller, so it never
/// costs more than one byte.
///
/// Wire format: one tag byte, then the body. Tag 0: the body is the inner payload as it is. Tag 1: the
/// body is one zlib stream whose output is the inner payload. The decoder refuses any other tag, a stream
/// that is corrupt, truncated or followed by bytes, and one that inflates past the inner codec's largest
/// payload (so a small upload cannot expand into an unbounded buffer).
///
/// It never runs under secure aggregation: masked words are uniformly random, and nothing shrinks them.
/// This is the only file that calls zlib.
public enum LosslessStage {
    /// Tag of a body stored as it is.
    static let storedTag: UInt8 = 0
    /// Tag of a body that is a zlib stream.
    static let deflatedTag: UInt8 = 1
    /// zlib's level: on mnist5k's `q4` and `topk` payloads, 1 comes within 5% of the default 6 in size at
    /// about twice the speed.
    static let level: Int32 = 1

    /// The stage's bytes for `payload`: deflated when that is smaller, stored otherwise.
    public static func wrap(_ payload: [UInt8]) -> [UInt8] {
        if let deflated = deflate(payload), deflated.count < payload.count {
            return [deflatedTag] + deflated
        }
        return [storedTag] + payload
    }

    /// The inner payload of `bytes`, which may be at most `limit` bytes long.
    /// - Throws: ``CodecError`` for an unknown tag, a corrupt or truncated stream, bytes after its end, or an
    ///   inner payload longer than `limit`.
    public static func unwrap(_ bytes: [UInt8], limit: Int) throws(CodecError) -> [UInt8] {
        guard let tag = bytes.first else { throw CodecError("deflate: an empty payload (it starts with a tag byte)") }
        let body = Array(bytes.dropFirst())
        switch tag {
        case storedTag:
            guard body.count <= limit else { throw CodecError("deflate: a stored payload of \(body.count) bytes; the codec sends at most \(limit)") }
            return body
        case deflatedTag:
            return try inflate(body, limit: limit)
        default:
            throw CodecError("deflate: unknown tag \(tag) (0 = stored, 1 = zlib stream)")
        }
    }

    /// A zlib stream of `input`, or nil when zlib fails (it does not for buffers in memory).
    static func deflate(_ input: [UInt8]) -> [UInt8]? {
        var bound = Int(compressBound(uLong(input.count)))
        var output = [UInt8](repeating: 0, count: bound)
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { source in
                var written = uLongf(bound)
                let status = compress2(out.baseAddress, &written, source.baseAddress, uLong(source.count), level)
                bound = Int(written)
                return status
            }
        }
        guard status == Z_OK else { return nil }
        output.removeSubrange(bound...)
        return output
    }

    /// The bytes of the zlib stream `input`, at most `limit` of them.
    /// - Throws: ``CodecError`` for a corrupt or truncated stream, bytes after it, or more than `limit` bytes.
    static func inflate(_ input: [UInt8], limit: Int) throws(CodecError) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw CodecError("deflate: zlib could not start inflating")
        }
        defer { inflateEnd(&stream) }
        // One byte past the limit tells a stream that is too long from one that fits exactly.
        var output = [UInt8](repeating: 0, count: limit + 1)
        var input = input
        let (status, produced, left) = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { out in
                stream.next_in = source.baseAddress
                stream.avail_in = uInt(source.count)
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                let status = CZlib.inflate(&stream, Z_FINISH)
                return (status, out.count - Int(stream.avail_out), Int(stream.avail_in))
            }
        }
        guard produced <= limit else { throw CodecError("deflate: the stream inflates past \(limit) bytes, the codec's largest payload") }
        switch status {
        case Z_STREAM_END:
            guard left == 0 else { throw CodecError("deflate: \(left) bytes after the end of the zlib stream") }
        case Z_BUF_ERROR:
            throw CodecError("deflate: the zlib stream is truncated")
        default:
            throw CodecError("deflate: the zlib stream is corrupt (zlib status \(status))")
        }
        output.removeSubrange(produced...)
        return output
    }
}
