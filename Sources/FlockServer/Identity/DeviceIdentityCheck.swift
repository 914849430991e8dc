import FlockWire
import GRPCCore
import GRPCNIOTransportHTTP2
import X509

/// Binds every edge call to the device certificate it came with, in one place: the call's client certificate
/// (mutual TLS, verified against the server's CA during the handshake) must name an enrolled device that is not
/// revoked, and every edge id the call's messages claim (the registering id, the heartbeat's, the update header's,
/// the sender of a key advertisement or a sealed share...) must be that device's. So an edge cannot register,
/// heartbeat, upload, advertise keys or reveal shares under another id, and a revoked device is refused at its next
/// call. `Enrol` is the only call admitted without a certificate (the token authenticates it).
///
/// A request message type that does not say which edge ids it claims (``EdgeClaim``) is refused, so a new edge
/// method cannot slip past the check.
public struct DeviceIdentityCheck: ServerInterceptor {
    /// The enrolled devices.
    public let directory: DeviceDirectory

    /// A check against `directory`.
    public init(directory: DeviceDirectory) { self.directory = directory }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard context.descriptor.service == Flock_V1_EdgeService.descriptor else { return try await next(request, context) }
        if context.descriptor == Flock_V1_EdgeService.Method.Enrol.descriptor { return try await next(request, context) }
        guard let id = Self.presentedEdgeId(context) else {
            throw RPCError(
                code: .unauthenticated,
                message: "this server admits enrolled devices only: enrol once with flock-edge enrol --server HOST:PORT --token TOKEN --ca CA.pem, then run")
        }
        guard directory.isActive(id) else {
            throw RPCError(
                code: .permissionDenied,
                message: "device \(id) is not enrolled or was revoked; ask the operator for a new enrolment token and enrol under a new id")
        }
        var checked = request
        checked.messages = RPCAsyncSequence(wrapping: request.messages.map { message throws -> Input in
            guard let claim = message as? any EdgeClaim else {
                throw RPCError(code: .internalError, message: "\(context.descriptor.method) is not covered by the identity check; nothing was done")
            }
            if let other = claim.claimedEdgeIds.first(where: { $0 != id }) {
                throw RPCError(
                    code: .permissionDenied,
                    message: "this connection's certificate is edge \(id)'s; it cannot speak for edge \(other.prefix(128))")
            }
            return message
        })
        return try await next(checked, context)
    }

    /// The edge id of the device certificate the call's connection presented, if it presented one.
    public static func presentedEdgeId(_ context: ServerContext) -> String? {
        guard let transport = context.transportSpecific as? HTTP2ServerTransport.Posix.Context,
            let certificate = transport.peerCertificate
        else { return nil }
        return CertificateAuthority.edgeId(of: certificate)
    }
}

/// A request message of the edge service, and the edge ids it speaks for.
public protocol EdgeClaim {
    /// The ids this message claims to come from (empty: it claims none, such as an update's data chunk).
    var claimedEdgeIds: [String] { get }
}

extension Flock_V1_RegisterRequest: EdgeClaim { public var claimedEdgeIds: [String] { [edgeID] } }
extension Flock_V1_HeartbeatRequest: EdgeClaim { public var claimedEdgeIds: [String] { [edgeID] } }
extension Flock_V1_FetchModelRequest: EdgeClaim { public var claimedEdgeIds: [String] { [edgeID] } }
extension Flock_V1_EvaluationReport: EdgeClaim { public var claimedEdgeIds: [String] { [edgeID] } }
extension Flock_V1_EvidenceReport: EdgeClaim { public var claimedEdgeIds: [String] { [edgeID] } }
extension Flock_V1_SecAggKeys: EdgeClaim { public var claimedEdgeIds: [String] { [edgeID] } }
extension Flock_V1_SecAggShares: EdgeClaim { public var claimedEdgeIds: [String] { [edgeID] + shares.map(\.from) } }
extension Flock_V1_SecAggPoll: EdgeClaim { public var claimedEdgeIds: [String] { [edgeID] } }
extension Flock_V1_SecAggReveal: EdgeClaim { public var claimedEdgeIds: [String] { [edgeID] } }
extension Flock_V1_RenewCertificateRequest: EdgeClaim { public var claimedEdgeIds: [String] { [edgeID] } }
extension Flock_V1_LeaveRequest: EdgeClaim { public var claimedEdgeIds: [String] { [edgeID] } }
extension Flock_V1_UpdateChunk: EdgeClaim {
    public var claimedEdgeIds: [String] {
        if case .header(let header)? = part { return [header.edgeID] }
        return []
    }
}
