import NIOCore
import NIOHPACK
import NIOHTTP2

/// Follows the gRPC length-prefixed framing of one direction of a stream (a 1-byte compressed flag and a 4-byte
/// big-endian length before each message), byte by byte across any split into frames, and finds the first
/// message whose declared length is over a limit. It never holds message bytes: it only counts them.
public struct MessageFraming: Sendable, Equatable {
    /// The longest message accepted, in bytes.
    public let limit: Int
    /// Bytes of the current 5-byte prefix read so far (0 between messages).
    private var prefixBytesRead = 0
    /// The length field of the current prefix, as far as it has been read.
    private var declaredLength: UInt64 = 0
    /// Bytes of the current message still to come.
    private var bodyBytesLeft = 0
    /// The declared length of the first message over ``limit``, once one was seen; reading stops there.
    public private(set) var oversizedLength: Int?

    /// Framing that accepts messages of at most `limit` bytes.
    public init(limit: Int) {
        precondition(limit >= 0, "a message limit is at least 0 bytes")
        self.limit = limit
    }

    /// Reads the next bytes of the stream; returns the declared length of the first message over the limit once
    /// its prefix is complete (and on every later call), nil while every message so far fits.
    public mutating func read<Bytes: RandomAccessCollection>(_ bytes: Bytes) -> Int? where Bytes.Element == UInt8 {
        if let oversizedLength { return oversizedLength }
        var index = bytes.startIndex
        while index != bytes.endIndex {
            if bodyBytesLeft > 0 {
                let skipped = min(bodyBytesLeft, bytes.distance(from: index, to: bytes.endIndex))
                index = bytes.index(index, offsetBy: skipped)
                bodyBytesLeft -= skipped
                continue
            }
            // Byte 0 of a prefix is the compressed flag; bytes 1-4 are the length.
            if prefixBytesRead > 0 { declaredLength = declaredLength << 8 | UInt64(bytes[index]) }
            prefixBytesRead += 1
            index = bytes.index(after: index)
            if prefixBytesRead == 5 {
                let length = Int(declaredLength)
                prefixBytesRead = 0
                declaredLength = 0
                if length > limit {
                    oversizedLength = length
                    return length
                }
                bodyBytesLeft = length
            }
        }
        return nil
    }
}

/// Answers a request message over the server's size limit with a gRPC status instead of a stream reset.
///
/// grpc-swift-nio-transport's stream handler resets the HTTP/2 stream when a message is longer than its
/// `maxRequestPayloadSize`, so the client learns only that the stream went away (`unavailable`, or `CANCELLED`
/// in grpc-python). This handler sits first in each HTTP/2 stream channel, before that stream handler, and reads
/// the length prefixes of the inbound DATA frames. When a message's declared length is over ``limit`` it answers
/// itself, before a byte of that message reaches the stream handler:
///
/// - `grpc-status` 8 (`RESOURCE_EXHAUSTED`) with a `grpc-message` naming the limit and the setting that raises
///   it, as a trailers-only response, or as trailers when the response headers are already out, ending the
///   stream;
/// - `RST_STREAM` with `NO_ERROR`, which tells the client to stop sending the rest (RFC 9113 section 8.1) and
///   closes the stream channel, so the RPC's handler sees its input fail and ends;
/// - from then on it drops the stream's inbound frames and the stream handler's outbound writes.
///
/// The transport's own limit stays in place behind it as a second bound.
public final class OversizedMessageGuard: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTP2Frame.FramePayload
    public typealias InboundOut = HTTP2Frame.FramePayload
    public typealias OutboundIn = HTTP2Frame.FramePayload
    public typealias OutboundOut = HTTP2Frame.FramePayload

    /// How far the response has gone out on this stream.
    private enum Response {
        case notStarted
        case headersSent
        case ended
    }

    /// The longest request message accepted, in bytes.
    public let limit: Int
    private var framing: MessageFraming
    private var response = Response.notStarted
    private var refused = false

    /// A guard that refuses request messages longer than `limit` bytes.
    public init(limit: Int) {
        self.limit = limit
        framing = MessageFraming(limit: limit)
    }

    /// The `onAcceptHTTP2Stream` callback of the server transport's configuration: puts a guard for `limit` first
    /// in each accepted stream channel.
    public static func installer(limit: Int) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(OversizedMessageGuard(limit: limit), position: .first)
            }
        }
    }

    /// The status message for a message of `length` bytes over `limit`.
    public static func message(length: Int, limit: Int) -> String {
        "a message of \(length) bytes is over this server's limit of \(limit) bytes; "
            + "the server raises it with --max-message-bytes (max_message_bytes in its configuration file)"
    }

    /// Passes inbound frames on until a DATA frame completes the prefix of a message over the limit; answers then,
    /// and drops that frame and every later one.
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        if case .data(let frame) = unwrapInboundIn(data), case .byteBuffer(let buffer) = frame.data,
           let length = framing.read(buffer.readableBytesView) {
            refuse(context: context, length: length)
            return
        }
        context.fireChannelRead(data)
    }

    /// Passes the stream handler's writes on, noting how far the response went, until the guard has answered;
    /// fails them from then on.
    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !refused else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        switch unwrapOutboundIn(data) {
        case .headers(let headers):
            response = headers.endStream ? .ended : .headersSent
        case .data(let frame) where frame.endStream:
            response = .ended
        default:
            break
        }
        context.write(data, promise: promise)
    }

    /// Passes flushes on until the guard has answered.
    public func flush(context: ChannelHandlerContext) {
        guard !refused else { return }
        context.flush()
    }

    private func refuse(context: ChannelHandlerContext, length: Int) {
        refused = true
        var headers = HPACKHeaders()
        switch response {
        case .notStarted:
            headers.add(name: ":status", value: "200")
            headers.add(name: "content-type", value: "application/grpc")
        case .headersSent, .ended:
            break
        }
        headers.add(name: "grpc-status", value: "8")
        headers.add(name: "grpc-message", value: Self.percentEncoded(Self.message(length: length, limit: limit)))
        if response != .ended {
            context.write(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: nil)
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.rstStream(.noError))).whenComplete { _ in
            // The reset closes the stream channel; close it in case the reset could not be written.
            channel.close(promise: nil)
        }
    }

    /// `text` as a `grpc-message` value: bytes outside printable ASCII and `%` percent-encoded.
    public static func percentEncoded(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let digits = Array("0123456789ABCDEF")
                encoded += "%\(digits[Int(byte >> 4)])\(digits[Int(byte & 0xF)])"
            }
        }
        return encoded
    }
}
