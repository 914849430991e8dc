/// The one error type of FlockCore: a code to branch on, a message written for the person who hits it,
/// and the underlying cause when there is one.
///
/// Messages never contain weights, data values beyond the offending token, or keys.
public struct CoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Extensible: new codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case invalidData, fileNotFound, io, modelMismatch, corruptFile, invalidArgument, unsupportedVersion, locked
        }
        private let base: Base

        /// A data file is malformed: ragged rows, non-numeric values, labels out of range, empty.
        public static let invalidData = Code(base: .invalidData)
        /// A file named by the user does not exist.
        public static let fileNotFound = Code(base: .fileNotFound)
        /// Reading or writing failed in the operating system.
        public static let io = Code(base: .io)
        /// Data or weights do not fit the model (feature count, class count, parameter count).
        public static let modelMismatch = Code(base: .modelMismatch)
        /// A model file or checkpoint failed its hash check or is structurally broken.
        public static let corruptFile = Code(base: .corruptFile)
        /// A parameter (spec, schedule, hyper-parameter) is out of range or malformed.
        public static let invalidArgument = Code(base: .invalidArgument)
        /// A file was written by a newer, unknown format version.
        public static let unsupportedVersion = Code(base: .unsupportedVersion)
        /// A folder is locked by another process (see `DirectoryLock`).
        public static let locked = Code(base: .locked)

        public var description: String { "\(base)" }
    }

    /// The kind of failure.
    public var code: Code
    /// A one-line message for the user, naming the file and line where it applies.
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
