import GRPCCore
import SwiftProtobuf

/// Counts every call the server receives, by RPC: the call, the bytes of each message in and out (protobuf
/// encoding and gRPC's 5-byte length prefix), and the refusal when the call ends with an error status
/// (whichever interceptor or handler refused it). The first interceptor of the server, so that it sees the
/// refusals of the ones after it.
///
/// Calls of methods the services do not have are answered `unimplemented` by the router before any interceptor,
/// so the `rpc` label only ever takes the services' method names.
struct MetricsInterceptor: ServerInterceptor {
    let metrics: ServerMetrics

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let rpc = context.descriptor.method
        let metrics = self.metrics
        metrics.recordCall(rpc)
        var counted = request
        counted.messages = RPCAsyncSequence(wrapping: request.messages.map { message in
            metrics.recordReceived(rpc, bytes: Self.framedSize(message))
            return message
        })
        var response: StreamingServerResponse<Output>
        do {
            response = try await next(counted, context)
        } catch {
            refused(rpc, error)
            throw error
        }
        switch response.accepted {
        case .failure(let error):
            refused(rpc, error)
        case .success(var contents):
            let produce = contents.producer
            contents.producer = { writer in
                do {
                    return try await produce(RPCWriter(wrapping: CountingWriter(base: writer, rpc: rpc, metrics: metrics)))
                } catch {
                    refused(rpc, error)
                    throw error
                }
            }
            response.accepted = .success(contents)
        }
        return response
    }

    private func refused(_ rpc: String, _ error: any Error) {
        let code = (error as? RPCError)?.code ?? (error as? any RPCErrorConvertible)?.rpcErrorCode ?? .unknown
        if let reason = ServerMetrics.RefusalReason(code) { metrics.recordRefusal(rpc, reason) }
    }

    /// Bytes a message takes inside HTTP/2 DATA frames: its protobuf encoding and the 5-byte length prefix.
    static func framedSize<Message>(_ message: Message) -> Int {
        guard let message = message as? any SwiftProtobuf.Message else { return 5 }
        return ((try? message.serializedBytes() as [UInt8])?.count ?? 0) + 5
    }
}

/// Counts the bytes of every message written through it.
private struct CountingWriter<Element: Sendable>: RPCWriterProtocol {
    let base: RPCWriter<Element>
    let rpc: String
    let metrics: ServerMetrics

    func write(_ element: Element) async throws {
        metrics.recordSent(rpc, bytes: MetricsInterceptor.framedSize(element))
        try await base.write(element)
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
        for element in elements { try await write(element) }
    }
}
