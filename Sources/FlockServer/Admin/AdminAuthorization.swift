import FlockWire
import GRPCCore

/// The one place the admin service is authorised: a gRPC server interceptor in front of every admin method (calls to
/// other services pass through untouched).
///
/// Each call must carry `authorization: Bearer TOKEN` with an active admin token (``AdminTokenStore``) whose role
/// permits the method, as ``requiredRoles`` says. A method missing from that table is refused for every token,
/// so a new admin method cannot be left open by mistake. The handler runs with the caller in
/// ``AdminCaller/current``, for the audit log.
///
/// Refusals change nothing: no token, or a token that is not this server's or was revoked, is `unauthenticated`;
/// a viewer calling an operator method is `permissionDenied` (and recorded in the audit log as refused).
public struct AdminAuthorization: ServerInterceptor {
    /// The role each admin method needs. Every method of the admin service must be here.
    public static let requiredRoles: [MethodDescriptor: AdminRole] = [
        Flock_V1_AdminService.Method.Status.descriptor: .viewer,
        Flock_V1_AdminService.Method.ListClients.descriptor: .viewer,
        Flock_V1_AdminService.Method.ListRounds.descriptor: .viewer,
        Flock_V1_AdminService.Method.ShowRound.descriptor: .viewer,
        Flock_V1_AdminService.Method.Control.descriptor: .operator,
        Flock_V1_AdminService.Method.ChangeProduction.descriptor: .operator,
        Flock_V1_AdminService.Method.CreateAdminToken.descriptor: .operator,
        Flock_V1_AdminService.Method.ListAdminTokens.descriptor: .operator,
        Flock_V1_AdminService.Method.RevokeAdminToken.descriptor: .operator,
        Flock_V1_AdminService.Method.ListAudit.descriptor: .viewer,
        Flock_V1_AdminService.Method.CreateEnrolmentTokens.descriptor: .operator,
        Flock_V1_AdminService.Method.ListDevices.descriptor: .viewer,
        Flock_V1_AdminService.Method.RevokeDevice.descriptor: .operator,
    ]

    /// The admin tokens.
    public let tokens: AdminTokenStore
    /// Where refused operator attempts are recorded.
    public let audit: AuditLog

    /// Creates the interceptor.
    public init(tokens: AdminTokenStore, audit: AuditLog) {
        self.tokens = tokens
        self.audit = audit
    }

    /// The longest `authorization` value looked at, in bytes.
    static let maximumHeaderBytes = 512

    /// Checks the caller's token and role, then runs the handler with ``AdminCaller/current`` set.
    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        // The other services (the edges') have their own checks.
        guard context.descriptor.service == Flock_V1_AdminService.descriptor else { return try await next(request, context) }
        let caller = try authorize(method: context.descriptor, metadata: request.metadata)
        // Admin methods are unary: the handler runs to its end inside `next`, within this task-local scope.
        return try await AdminCaller.$current.withValue(caller) { try await next(request, context) }
    }

    /// Who is calling `method` with `metadata`, if they may.
    /// - Throws: `RPCError` `unauthenticated` (no token, not this server's, revoked) or `permissionDenied` (the
    ///   method is not in ``requiredRoles``, or the token's role does not permit it), each saying what to do.
    public func authorize(method: MethodDescriptor, metadata: Metadata) throws(RPCError) -> AdminCaller {
        guard let needed = Self.requiredRoles[method] else {
            throw RPCError(
                code: .permissionDenied,
                message: "\(method.method) has no role in the server's admin authorisation table, so no token may call it (a server defect: report it)")
        }
        let header = metadata[stringValues: "authorization"].first(where: { _ in true }) ?? ""
        guard header.hasPrefix("Bearer "), header.utf8.count > 7, header.utf8.count <= Self.maximumHeaderBytes else {
            throw RPCError(
                code: .unauthenticated,
                message: "admin calls need an admin token: --token-file FILE, FLOCK_ADMIN_TOKEN, or DATA_DIR/\(AdminToken.tokenFileName) via --data-dir")
        }
        switch tokens.lookup(String(header.dropFirst(7))) {
        case .unknown:
            throw RPCError(
                code: .unauthenticated,
                message: "this admin token is not one this server accepts (mistyped, or from another server's data directory); ask an operator for one (`flock-server admin tokens create`)")
        case .revoked(let entry):
            throw RPCError(
                code: .unauthenticated,
                message: "admin token \(entry.id)\(entry.label.isEmpty ? "" : " (\(entry.label))") was revoked; ask an operator for a new one (`flock-server admin tokens create`)")
        case .accepted(let caller):
            guard caller.role.permits(needed) else {
                try? audit.record(AuditEvent(
                    actor: caller.actor, action: method.method, outcome: .refused, detail: "needs the \(needed.rawValue) role; the token is a \(caller.role.rawValue)"))
                throw RPCError(
                    code: .permissionDenied,
                    message: "\(method.method) needs an \(needed.rawValue) token; token \(caller.tokenID) is a \(caller.role.rawValue). Ask an operator to do it, or for an operator token (`flock-server admin tokens create --role operator`)")
            }
            return caller
        }
    }
}
