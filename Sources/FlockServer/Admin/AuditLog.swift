import FlockCore
import Foundation
import GRPCCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The server's audit log, `DATA_DIR/audit.log`: one JSON object per line (``AuditEvent``), mode 0600,
/// appended and `fsync`ed before ``record(_:)`` returns, so a recorded action survives a crash.
///
/// Every operator action of the admin service is recorded (start, pause, resume, stop, promote, rollback, pin,
/// unpin, admin token create and revoke, device enrolment and revocation), with who did it, the arguments that
/// are not secrets, when, and how it ended; so is an attempt refused because the caller's role does not allow it.
/// `flock-server admin audit` reads it back.
public final class AuditLog: Sendable {
    /// The file's name in the data directory.
    public static let fileName = "audit.log"

    /// The file's path.
    public let path: String
    /// Serialises appends from concurrent calls in this process; true once the file's tail was checked.
    private let appending = Mutex<Bool>(false)

    /// The audit log of the server whose data directory is `directory` (the file is created by the first record).
    public init(directory: String) {
        path = directory + "/" + Self.fileName
    }

    /// Appends `event` as one JSON line and `fsync`s the file (and, when this created it, its folder) before
    /// returning.
    /// - Throws: ``CoreError`` (`io`) naming the file and the system's reason when it cannot be written.
    public func record(_ event: AuditEvent) throws(CoreError) {
        var line = [UInt8](JSONOutput.data(event))
        line.append(UInt8(ascii: "\n"))
        try appending.withLock { (tailChecked) throws(CoreError) in
            // A crash during an append (before this process) leaves a line without its newline: end it, so that
            // this record stands on a line of its own.
            if !tailChecked, Self.endsWithoutNewline(path) { line.insert(UInt8(ascii: "\n"), at: 0) }
            let existed = access(path, F_OK) == 0
            try FileIO.appendDurably(line, to: path, permissions: 0o600)
            if !existed { Self.syncFolder(of: path) }
            tailChecked = true
        }
    }

    /// What ``read(limit:)`` found.
    public struct Contents: Sendable, Equatable {
        /// The events, oldest first.
        public var events: [AuditEvent]
        /// The numbers (from 1) of the lines that are not audit events: a line cut short by a crash during an
        /// append, or a damaged or edited file.
        public var damagedLines: [Int]

        /// Creates the contents.
        public init(events: [AuditEvent], damagedLines: [Int]) {
            self.events = events
            self.damagedLines = damagedLines
        }
    }

    /// The recorded events, oldest first, and the lines that are not events (skipped).
    /// - Parameter limit: only the last `limit` events (all when nil).
    /// - Returns: no events when nothing was recorded yet.
    /// - Throws: ``CoreError`` (`io`) when the file cannot be read.
    public func read(limit: Int? = nil) throws(CoreError) -> Contents {
        let bytes: [UInt8]
        do {
            bytes = try FileIO.read(path)
        } catch where error.code == .fileNotFound {
            return Contents(events: [], damagedLines: [])
        }
        let decoder = JSONDecoder()
        var contents = Contents(events: [], damagedLines: [])
        for (index, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            if let event = try? decoder.decode(AuditEvent.self, from: Data(line)) {
                contents.events.append(event)
            } else {
                contents.damagedLines.append(index + 1)
            }
        }
        if let limit, contents.events.count > limit { contents.events.removeFirst(contents.events.count - limit) }
        return contents
    }

    /// The recorded events, oldest first, without the lines that are not events (see ``read(limit:)``).
    /// - Parameter limit: only the last `limit` events (all when nil).
    /// - Throws: ``CoreError`` (`io`) when the file cannot be read.
    public func events(limit: Int? = nil) throws(CoreError) -> [AuditEvent] { try read(limit: limit).events }

    /// Runs an admin action and records it with its outcome: `ok` when `body` returns, `refused` when it throws an
    /// `RPCError` that rejects the request (bad arguments, wrong state, not found, not allowed), `failed` otherwise.
    /// The error is thrown on.
    /// - Parameters:
    ///   - action: what is done (`promote`, `tokens.create`, ...).
    ///   - arguments: its arguments that are not secrets.
    ///   - actor: who does it (default: the admin caller of this call, ``AdminCaller/current``).
    ///   - detail: the text recorded for a successful result (default: none).
    ///   - body: the action.
    /// - Throws: what `body` throws; when the action succeeded but its record cannot be written, an `RPCError`
    ///   (`internalError`) saying the action took effect and the audit log could not be written.
    public func recording<Result: Sendable>(
        _ action: String, arguments: [String: String] = [:], actor: AuditEvent.Actor? = nil,
        detail: (Result) -> String? = { _ in nil },
        _ body: () async throws -> Result
    ) async throws -> Result {
        let who = actor ?? AdminCaller.current?.actor ?? .server
        let result: Result
        do {
            result = try await body()
        } catch {
            let outcome: AuditEvent.Outcome
            let text: String
            if let rpc = error as? RPCError {
                text = rpc.message
                outcome = Self.refusals.contains(rpc.code) ? .refused : .failed
            } else {
                text = (error as? CoreError)?.message ?? String(describing: error)
                outcome = .failed
            }
            // The action's own error matters more to the caller than a failure to record it.
            try? record(AuditEvent(actor: who, action: action, arguments: arguments, outcome: outcome, detail: text))
            throw error
        }
        do {
            try record(AuditEvent(actor: who, action: action, arguments: arguments, outcome: .ok, detail: detail(result)))
        } catch {
            throw RPCError(
                code: .internalError,
                message: "\(action) took effect, but its audit record could not be written (\(error.message)); free space or fix \(path)")
        }
        return result
    }

    /// Codes that mean the request was turned down before it took effect.
    private static let refusals: Set<RPCError.Code> = [
        .invalidArgument, .failedPrecondition, .notFound, .permissionDenied, .unauthenticated, .alreadyExists, .outOfRange,
    ]

    /// Whether the file exists, is not empty and its last byte is not a newline.
    private static func endsWithoutNewline(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var last: UInt8 = 0
        guard lseek(fd, -1, SEEK_END) >= 0, Glibc.read(fd, &last, 1) == 1 else { return false }
        return last != UInt8(ascii: "\n")
    }

    /// Makes a newly created file's directory entry durable.
    private static func syncFolder(of path: String) {
        guard let slash = path.lastIndex(of: "/") else { return }
        let folder = slash == path.startIndex ? "/" : String(path[..<slash])
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }
}
