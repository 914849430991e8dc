import FlockWire
import GRPCCore

extension EdgeServiceHandler {
    /// An edge shutting down leaves membership at once.
    public func leave(request: Flock_V1_LeaveRequest, context: ServerContext) async throws -> Flock_V1_LeaveResponse {
        guard request.reason.utf8.count <= WireLimits.maximumReasonBytes else {
            throw RPCError(code: .invalidArgument, message: "reason is at most \(WireLimits.maximumReasonBytes) bytes")
        }
        try await refusing { () async throws(ServeRefusal) in
            try await coordinator.leave(id: request.edgeID, session: request.session, reason: request.reason)
        }
        return Flock_V1_LeaveResponse()
    }
}
