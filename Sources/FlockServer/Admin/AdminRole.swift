/// What an admin token may do.
///
/// A `viewer` reads: status, clients, rounds, registry reads and the audit log. An `operator`
/// also acts: start, pause, resume, stop, promote, rollback, pin, unpin, admin tokens, device enrolment and
/// revocation. Each admin method's role is set in one table, ``AdminAuthorization/requiredRoles``.
public enum AdminRole: String, Sendable, Codable, CaseIterable, Comparable {
    /// Reads the server's state.
    case viewer
    /// Reads and changes the server's state.
    case `operator`

    /// Whether a token of this role may call a method that needs `needed`.
    public func permits(_ needed: AdminRole) -> Bool { self >= needed }

    public static func < (lhs: AdminRole, rhs: AdminRole) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
