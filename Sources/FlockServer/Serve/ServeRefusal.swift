/// Why the server refused a call from an edge or an admin: a kind that maps onto a gRPC status code and a
/// message that tells the caller what to do. A refused call changes no server state.
public struct ServeRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of refusal.
    public enum Kind: Sendable, Equatable {
        /// Malformed or out-of-range input (wrong length, NaN, bad id, bad codec).
        case invalidArgument
        /// Unknown or stale session, or a missing or wrong admin token: register again / pass the token.
        case unauthenticated
        /// Right message at the wrong time: a closed or unknown round, an edge that was not selected.
        case failedPrecondition
        /// A second submission for the same round.
        case alreadyExists
        /// No such model or round.
        case notFound
        /// The server could not record the input durably (its disk failed): try again later.
        case unavailable
        /// A per-edge limit is reached (one update stream at a time): finish the other call first.
        case resourceExhausted
        /// The caller is known but not allowed this: a revoked device, a certificate naming another edge.
        case permissionDenied
    }

    /// The kind.
    public var kind: Kind
    /// A one-line message for the caller.
    public var message: String

    /// Creates a refusal.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
