import FlockServer
import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing

/// The gRPC framing reader on its own, and the stream handler that answers a message over the limit with
/// `RESOURCE_EXHAUSTED` on an embedded channel: what it lets through, what it writes, and that it closes the stream.
@Suite struct OversizedMessageGuardTests {
    /// A gRPC message prefix: the compressed flag and the big-endian length.
    static func prefix(_ length: UInt32, compressed: Bool = false) -> [UInt8] {
        [compressed ? 1 : 0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
    }

    static func stream(_ lengths: [UInt32]) -> [UInt8] {
        lengths.flatMap { prefix($0) + [UInt8](repeating: 0xAB, count: Int($0)) }
    }

    @Test func messagesUpToTheLimitPassInAnySplit() {
        let bytes = Self.stream([0, 100, 7, 99, 100])
        // Whole, and cut at every position into two and into single bytes.
        var whole = MessageFraming(limit: 100)
        #expect(whole.read(bytes) == nil)
        for cut in 0...bytes.count {
            var framing = MessageFraming(limit: 100)
            #expect(framing.read(bytes[..<cut]) == nil && framing.read(bytes[cut...]) == nil, "cut at \(cut)")
        }
        var byByte = MessageFraming(limit: 100)
        for byte in bytes { #expect(byByte.read([byte]) == nil) }
        // Body bytes that look like a prefix are skipped, not read as one.
        var bodies = MessageFraming(limit: 10)
        #expect(bodies.read(Self.prefix(10) + Self.prefix(0xFFFF_FFFF) + [0, 0, 0, 0, 0] + Self.prefix(3) + [1, 2, 3]) == nil)
    }

    @Test func theFirstMessageOverTheLimitIsFoundOnceItsPrefixIsComplete() {
        let bytes = Self.stream([10, 100]) + Self.prefix(101, compressed: true) + [1, 2, 3]
        let end = Self.stream([10, 100]).count + 5
        for cut in 0...bytes.count {
            var framing = MessageFraming(limit: 100)
            let first = framing.read(bytes[..<cut])
            // Found in the part that completes the prefix, and remembered from then on.
            #expect(first == (cut >= end ? 101 : nil), "cut at \(cut)")
            #expect(framing.read(bytes[cut...]) == 101 && framing.oversizedLength == 101)
            #expect(framing.read([0, 0, 0, 0, 0]) == 101)
        }
        var byByte = MessageFraming(limit: 100)
        let found = bytes.indices.first { byByte.read([bytes[$0]]) != nil }
        #expect(found == end - 1)
        // The largest declared length, and a limit of 0.
        var largest = MessageFraming(limit: 1 << 30)
        #expect(largest.read(Self.prefix(0xFFFF_FFFF)) == 0xFFFF_FFFF)
        var none = MessageFraming(limit: 0)
        #expect(none.read(Self.prefix(0) + Self.prefix(0) + Self.prefix(1)) == 1)
    }

    static func data(_ bytes: [UInt8], endStream: Bool = false) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(bytes: bytes)), endStream: endStream))
    }

    static let requestHeaders = HTTP2Frame.FramePayload.headers(.init(headers: [
        ":method": "POST", ":scheme": "http", ":path": "/flock.v1.Edge/SubmitUpdate", "content-type": "application/grpc", "te": "trailers",
    ]))

    /// The frames the handler wrote, in order.
    static func written(_ channel: EmbeddedChannel) throws -> [HTTP2Frame.FramePayload] {
        var frames = [HTTP2Frame.FramePayload]()
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { frames.append(frame) }
        return frames
    }

    @Test func anOversizedRequestGetsATrailersOnlyResourceExhaustedStatusAndTheStreamCloses() throws {
        let channel = EmbeddedChannel(handler: OversizedMessageGuard(limit: 1000))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(Self.requestHeaders)
        // One message that fits, then a prefix split over two frames declaring 1001 bytes.
        try channel.writeInbound(Self.data(Self.stream([1000]) + [0, 0]))
        try channel.writeInbound(Self.data([0, 0x03, 0xE9, 1, 2, 3]))

        // Through to the stream handler: the headers and the first DATA frame, not the one that completes the refused
        // length.
        var passed = [HTTP2Frame.FramePayload]()
        while let frame = try channel.readInbound(as: HTTP2Frame.FramePayload.self) { passed.append(frame) }
        #expect(passed.count == 2)
        if case .data(let second) = passed.last, case .byteBuffer(let buffer) = second.data { #expect(buffer.readableBytes == 1007) } else {
            Issue.record("the first DATA frame did not pass: \(passed)")
        }
        channel.embeddedEventLoop.run()
        let frames = try Self.written(channel)
        guard frames.count == 2, case .headers(let trailers) = frames[0], case .rstStream(let code) = frames[1] else {
            Issue.record("expected trailers and a reset, got \(frames)")
            return
        }
        #expect(trailers.endStream && code == .noError)
        #expect(trailers.headers.first(name: ":status") == "200" && trailers.headers.first(name: "content-type") == "application/grpc")
        #expect(trailers.headers.first(name: "grpc-status") == "8")
        let message = try #require(trailers.headers.first(name: "grpc-message"))
        #expect(message == OversizedMessageGuard.message(length: 1001, limit: 1000))
        #expect(message.contains("1001 bytes") && message.contains("limit of 1000 bytes") && message.contains("--max-message-bytes")
            && message.contains("max_message_bytes"))
        // The stream channel is closed, so the RPC's handler ends; its later writes go nowhere.
        #expect(!channel.isActive)
        _ = try? channel.writeOutbound(HTTP2Frame.FramePayload.headers(.init(headers: ["grpc-status": "1"])))
        #expect(try Self.written(channel).isEmpty)
    }

    @Test func afterTheResponseHeadersTheStatusGoesOutAsTrailers() throws {
        let channel = EmbeddedChannel(handler: OversizedMessageGuard(limit: 64))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(Self.requestHeaders)
        try channel.writeOutbound(HTTP2Frame.FramePayload.headers(.init(headers: [":status": "200", "content-type": "application/grpc"])))
        try channel.writeOutbound(Self.data(Self.stream([3])))
        #expect(try Self.written(channel).count == 2)

        try channel.writeInbound(Self.data(Self.stream([64]) + Self.prefix(65)))
        #expect(try channel.readInbound(as: HTTP2Frame.FramePayload.self) != nil)  // the request headers
        #expect(try channel.readInbound(as: HTTP2Frame.FramePayload.self) == nil)
        channel.embeddedEventLoop.run()
        let frames = try Self.written(channel)
        guard frames.count == 2, case .headers(let trailers) = frames[0], case .rstStream(.noError) = frames[1] else {
            Issue.record("expected trailers and a reset, got \(frames)")
            return
        }
        #expect(trailers.endStream && trailers.headers.first(name: ":status") == nil && trailers.headers.first(name: "grpc-status") == "8")
        #expect(trailers.headers.first(name: "grpc-message") == OversizedMessageGuard.message(length: 65, limit: 64))
    }

    /// Stands for the stream channel's head: records a close instead of closing, so what the guard does after its
    /// answer can be watched.
    final class KeepOpen: ChannelOutboundHandler {
        typealias OutboundIn = HTTP2Frame.FramePayload
        var closes = 0

        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            closes += 1
            promise?.succeed()
        }
    }

    @Test func afterItsAnswerTheGuardDropsInboundFramesAndOutboundWritesAndClosesTheStream() throws {
        let head = KeepOpen()
        let channel = EmbeddedChannel(handlers: [head, OversizedMessageGuard(limit: 4)])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(Self.requestHeaders)
        try channel.writeInbound(Self.data(Self.prefix(5)))
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel).count == 2 && head.closes == 1)
        _ = try channel.readInbound(as: HTTP2Frame.FramePayload.self)

        // The rest of the request and the stream handler's answer, which would come after the guard's, go nowhere.
        try channel.writeInbound(Self.data(Self.prefix(1) + [9], endStream: true))
        #expect(try channel.readInbound(as: HTTP2Frame.FramePayload.self) == nil)
        let late = channel.write(HTTP2Frame.FramePayload.headers(.init(headers: ["grpc-status": "14"], endStream: true)))
        channel.flush()
        channel.embeddedEventLoop.run()
        #expect(throws: ChannelError.self) { try late.wait() }
        #expect(try Self.written(channel).isEmpty)
    }

    @Test func aGrpcMessageIsPercentEncoded() {
        #expect(OversizedMessageGuard.percentEncoded("plain text; 100 bytes") == "plain text; 100 bytes")
        #expect(OversizedMessageGuard.percentEncoded("50% é\n") == "50%25 %C3%A9%0A")
    }
}
