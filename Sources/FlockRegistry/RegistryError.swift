/// The one error type of FlockRegistry: a code to branch on, a message that says what to do, and the
/// underlying cause (a GRDB or file error) when there is one.
///
/// Messages name versions, aliases, hashes and files; never weights or edge data.
public struct RegistryError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Extensible: new codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case notFound, invalidArgument, integrity, database, io, conflict, query
        }
        private let base: Base

        /// A version, alias or analysis that the registry does not hold.
        public static let notFound = Code(base: .notFound)
        /// A request that cannot apply (a reason missing, a version of another model, a bad setting).
        public static let invalidArgument = Code(base: .invalidArgument)
        /// An artifact whose bytes do not hash to its name, or a signature that does not verify.
        public static let integrity = Code(base: .integrity)
        /// SQLite refused: the file is damaged, locked, or of a newer schema.
        public static let database = Code(base: .database)
        /// Reading or writing a file failed in the operating system.
        public static let io = Code(base: .io)
        /// The state changed under the request (a pinned production, an alias that moved).
        public static let conflict = Code(base: .conflict)
        /// A registry query that does not parse; the message points at the offending token.
        public static let query = Code(base: .query)

        public var description: String { "\(base)" }
    }

    /// The kind of failure.
    public var code: Code
    /// A one-line message for the user.
    public var message: String
    /// The underlying error, if any.
    public var cause: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(message) (\(cause))" }
        return message
    }
}
