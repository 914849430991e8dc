/// Who is calling the admin service: the admin token the call presented, as the authorisation interceptor
/// (``AdminAuthorization``) found it. Handlers read it from ``current`` to record who acted in the audit log.
public struct AdminCaller: Sendable, Equatable {
    /// The token's id (not the token).
    public var tokenID: String
    /// The token's label, given when it was created.
    public var label: String
    /// The token's role.
    public var role: AdminRole

    /// Creates a caller.
    public init(tokenID: String, label: String, role: AdminRole) {
        self.tokenID = tokenID
        self.label = label
        self.role = role
    }

    /// The caller of the admin call running in this task, set by ``AdminAuthorization`` for the duration of the
    /// handler; nil outside an admin call.
    @TaskLocal public static var current: AdminCaller?

    /// The caller as the audit log names it.
    public var actor: AuditEvent.Actor { AuditEvent.Actor(kind: .token, id: tokenID, label: label) }
}
