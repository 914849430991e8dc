import FlockCore
import FlockCrypto
import Foundation
import Synchronization

/// The admin tokens a server accepts, each with an id, a role, a label, when it was made and whether it is
/// revoked, kept in `DATA_DIR/admin-tokens.json` (mode 0600, written atomically and durably). Only each token's
/// SHA-256 is kept; a token is shown once, when it is created.
///
/// The server's first token (``AdminToken``: `DATA_DIR/admin.token`, hash in `admin.token.sha256`) is the
/// operator token with id ``initialID``. Revoking it holds until its hash changes: stopping the server, deleting
/// `admin.token.sha256` and starting it again issues a new first token, active, which is how an operator
/// with access to the data directory gets back in.
public final class AdminTokenStore: Sendable {
    /// The file's name in the data directory.
    public static let fileName = "admin-tokens.json"
    /// The id of the server's first operator token, the one in `DATA_DIR/admin.token`.
    public static let initialID = "admin"
    /// The longest label accepted, in bytes.
    public static let maximumLabelBytes = 128

    /// One token, without its secret.
    public struct Entry: Sendable, Equatable, Codable {
        /// A short public name for the token (not the token).
        public var id: String
        /// SHA-256 of the token, hex.
        public var sha256: String
        /// What the token may do.
        public var role: AdminRole
        /// Who or what it is for, as given when it was created.
        public var label: String
        /// When it was created.
        public var created: Date
        /// When it was revoked; nil while it is active.
        public var revoked: Date?

        /// Whether it was revoked.
        public var isRevoked: Bool { revoked != nil }
    }

    /// What a presented token is.
    public enum Lookup: Sendable, Equatable {
        /// An active token, as its caller.
        case accepted(AdminCaller)
        /// A token of this server that was revoked.
        case revoked(Entry)
        /// Not a token of this server.
        case unknown
    }

    private struct File: Codable {
        var version = 1
        var tokens: [Entry]
    }

    /// The file's path.
    public let path: String
    private let entries: Mutex<[Entry]>

    /// Opens the store of the server whose data directory is `directory`, creating it, and adds or updates the
    /// server's first token (id ``initialID``) from `initial`.
    /// - Throws: ``CoreError`` when the file cannot be read or written, or is damaged.
    public init(directory: String, initial: AdminToken) throws(CoreError) {
        path = directory + "/" + Self.fileName
        var tokens: [Entry] = []
        if let bytes = try Self.readIfPresent(path) {
            let file: File
            do { file = try JSONDecoder.tokens.decode(File.self, from: Data(bytes)) } catch {
                throw CoreError(.corruptFile, "\(path): not an admin token list (\(error)); restore it from a backup, or move it away to keep only the first token")
            }
            guard file.version == 1 else {
                throw CoreError(.unsupportedVersion, "\(path): version \(file.version) is newer than this server knows; run the newer server")
            }
            tokens = file.tokens
        }
        let initialHash = initial.hash.hex
        var changed = false
        if let index = tokens.firstIndex(where: { $0.id == Self.initialID }) {
            if tokens[index].sha256 != initialHash {
                // admin.token.sha256 was replaced: the new first token is active, the old one is gone.
                tokens[index] = Entry(id: Self.initialID, sha256: initialHash, role: .operator, label: AdminToken.tokenFileName, created: Date())
                changed = true
            }
        } else {
            tokens.insert(Entry(id: Self.initialID, sha256: initialHash, role: .operator, label: AdminToken.tokenFileName, created: Date()), at: 0)
            changed = true
        }
        entries = Mutex(tokens)
        if changed { try Self.write(tokens, to: path) }
    }

    /// What `presented` is: compared by SHA-256 against every token, each in constant time.
    public func lookup(_ presented: String) -> Lookup {
        let digest = SHA256.hash(Array(presented.utf8))
        let tokens = entries.withLock { $0 }
        var found: Entry?
        for entry in tokens {
            guard let stored = SHA256.Digest(hex: entry.sha256) else { continue }
            if stored.constantTimeEquals(digest) { found = entry }
        }
        guard let found else { return .unknown }
        if found.isRevoked { return .revoked(found) }
        return .accepted(AdminCaller(tokenID: found.id, label: found.label, role: found.role))
    }

    /// Every token, oldest first, without secrets.
    public func list() -> [Entry] { entries.withLock { $0 } }

    /// Issues a new token.
    /// - Returns: the token (shown once; only its hash is kept) and its entry.
    /// - Throws: ``ServeRefusal`` `invalidArgument` for a label that is too long or has control characters,
    ///   `unavailable` when the file cannot be written (nothing is issued then).
    public func create(role: AdminRole, label: String) throws(ServeRefusal) -> (token: String, entry: Entry) {
        guard label.utf8.count <= Self.maximumLabelBytes else {
            throw ServeRefusal(.invalidArgument, "label: at most \(Self.maximumLabelBytes) bytes (got \(label.utf8.count))")
        }
        guard !label.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ServeRefusal(.invalidArgument, "label: no control characters (tabs, newlines)")
        }
        let token = SecureRandom.token()
        let entry = Entry(
            id: "k" + SecureRandom.token(byteCount: 6), sha256: SHA256.hash(Array(token.utf8)).hex, role: role, label: label, created: Date())
        try update { tokens in tokens.append(entry) }
        return (token, entry)
    }

    /// Revokes the token `id`: it is refused from its next call on.
    /// - Returns: its entry, revoked.
    /// - Throws: ``ServeRefusal`` `notFound` for an unknown id, `failedPrecondition` for a token already revoked or
    ///   the last active operator token (nobody could act any more), `unavailable` when the file cannot be written
    ///   (the token stays active then).
    public func revoke(id: String) throws(ServeRefusal) -> Entry {
        var revoked: Entry?
        try update { (tokens) throws(ServeRefusal) in
            guard let index = tokens.firstIndex(where: { $0.id == id }) else {
                throw ServeRefusal(.notFound, "no admin token \(id); `flock-server admin tokens list` shows the ids")
            }
            guard !tokens[index].isRevoked else { throw ServeRefusal(.failedPrecondition, "admin token \(id) is already revoked") }
            if tokens[index].role == .operator,
                !tokens.indices.contains(where: { $0 != index && tokens[$0].role == .operator && !tokens[$0].isRevoked })
            {
                throw ServeRefusal(
                    .failedPrecondition,
                    "admin token \(id) is the last active operator token; create another (`flock-server admin tokens create --role operator`) first")
            }
            tokens[index].revoked = Date()
            revoked = tokens[index]
        }
        return revoked!
    }

    /// Applies `change` to the tokens and writes them, all under the lock; on a failed write nothing changes.
    private func update(_ change: (inout [Entry]) throws(ServeRefusal) -> Void) throws(ServeRefusal) {
        try entries.withLock { (tokens) throws(ServeRefusal) in
            var next = tokens
            try change(&next)
            do throws(CoreError) {
                try Self.write(next, to: path)
            } catch {
                throw ServeRefusal(.unavailable, "the admin token list could not be written (\(error.message)); nothing changed")
            }
            tokens = next
        }
    }

    private static func readIfPresent(_ path: String) throws(CoreError) -> [UInt8]? {
        do { return try FileIO.read(path) } catch where error.code == .fileNotFound { return nil }
    }

    private static func write(_ tokens: [Entry], to path: String) throws(CoreError) {
        let data: Data
        do { data = try JSONEncoder.tokens.encode(File(tokens: tokens)) } catch {
            throw CoreError(.io, "\(path): cannot encode the admin token list: \(error)")
        }
        try FileIO.writeAtomically(Array(data) + [UInt8(ascii: "\n")], to: path, permissions: 0o600)
    }
}

extension JSONEncoder {
    fileprivate static var tokens: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }
}

extension JSONDecoder {
    fileprivate static var tokens: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
