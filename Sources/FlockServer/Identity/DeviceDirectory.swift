import FlockCore
import FlockCrypto
import Foundation
import GRDB
import Synchronization

/// An edge device enrolled with the server: the identity its certificates carry, and whether it may still call.
public struct EnrolledDevice: Sendable, Equatable, Codable {
    /// The edge id, in the subject alternative name of every certificate issued to the device.
    public var edgeId: String
    /// The label of the enrolment token it used (the operator's note: a site, a batch).
    public var label: String
    /// The first 12 hex digits of the enrolment token's SHA-256: which token enrolled it, without the token.
    public var tokenId: String
    /// When it enrolled.
    public var enrolledAt: Date
    /// The serial number (hex) of its newest certificate.
    public var certificateSerial: String
    /// When its newest certificate expires; the edge renews it before then.
    public var certificateExpires: Date
    /// When it was revoked, if it was: it is refused at its next call and cannot enrol again under this id.
    public var revokedAt: Date?

    /// True unless revoked.
    public var isActive: Bool { revokedAt == nil }
}

/// A one-time enrolment token, as the operator sees it once when it is created. The server keeps only its hash.
public struct IssuedEnrolmentToken: Sendable, Equatable, Codable {
    /// The first 12 hex digits of the token's SHA-256, by which audit events and devices name it.
    public var id: String
    /// The token itself: give it to one device (`flock-edge enrol --token`).
    public var token: String
    /// After this it is refused.
    public var expires: Date
    /// The operator's label, copied to the device that uses it.
    public var label: String
}

/// Enrolment tokens and enrolled devices of one server, in an SQLite file in its data directory
/// (`devices.sqlite`, mode 0600). Tokens are stored as SHA-256 hashes, used once, and expire; devices keep the
/// serial of their newest certificate and a revocation time. Every change is one transaction, durable before the
/// call returns. The active/revoked state of every device is also kept in memory, because every edge call checks
/// it.
public final class DeviceDirectory: Sendable {
    /// The file's name in the data directory.
    public static let fileName = "devices.sqlite"
    /// Tokens are 24 random bytes in hex.
    public static let tokenBytes = 24
    /// At most this many tokens in one request.
    public static let maximumTokensPerRequest = 10_000

    private let queue: DatabaseQueue
    private let states: Mutex<[String: Bool]>

    /// Opens (creating when missing) the directory of the server whose data directory is `folder`.
    /// - Throws: ``CoreError`` when the file cannot be opened or is not a device directory.
    public init(folder: String) throws(CoreError) {
        let path = folder + "/" + Self.fileName
        do {
            var configuration = Configuration()
            configuration.busyMode = .timeout(5)
            queue = try DatabaseQueue(path: path, configuration: configuration)
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
            var migrator = DatabaseMigrator()
            migrator.registerMigration("devices-1") { db in
                try db.execute(sql: """
                    CREATE TABLE enrolment_token (
                        hash TEXT PRIMARY KEY NOT NULL,
                        label TEXT NOT NULL,
                        created REAL NOT NULL,
                        expires REAL NOT NULL,
                        used REAL,
                        used_by TEXT
                    );
                    CREATE TABLE device (
                        edge_id TEXT PRIMARY KEY NOT NULL,
                        label TEXT NOT NULL,
                        token_id TEXT NOT NULL,
                        enrolled REAL NOT NULL,
                        key_sha256 TEXT NOT NULL,
                        serial TEXT NOT NULL,
                        expires REAL NOT NULL,
                        revoked REAL
                    );
                    """)
            }
            try migrator.migrate(queue)
            let rows = try queue.read { db in
                try Row.fetchAll(db, sql: "SELECT edge_id, revoked FROM device").map { ($0["edge_id"] as String, ($0["revoked"] as Double?) == nil) }
            }
            states = Mutex(Dictionary(rows, uniquingKeysWith: { $1 }))
        } catch let error as CoreError {
            throw error
        } catch {
            throw CoreError(.corruptFile, "\(path): \(error); it holds the enrolled devices, so restore it from a backup rather than delete it")
        }
        chmod(path, 0o600)
    }

    /// Issues `count` one-time tokens that expire after `lifetime` seconds.
    /// - Throws: ``CoreError/Kind/invalidArgument`` for a count or lifetime out of range; ``CoreError`` when the
    ///   file cannot be written (then no token was issued).
    public func createTokens(count: Int, lifetime: TimeInterval, label: String, now: Date = Date()) throws(CoreError) -> [IssuedEnrolmentToken] {
        guard (1...Self.maximumTokensPerRequest).contains(count) else {
            throw CoreError(.invalidArgument, "count must be 1-\(Self.maximumTokensPerRequest), not \(count)")
        }
        guard lifetime > 0, lifetime <= 366 * 86_400 else {
            throw CoreError(.invalidArgument, "a token must expire within a year; give e.g. --expires 7d")
        }
        guard label.utf8.count <= 128, !label.contains(where: { $0.isNewline }) else {
            throw CoreError(.invalidArgument, "a label is one line of at most 128 bytes")
        }
        let expires = now.addingTimeInterval(lifetime)
        let issued = (0..<count).map { _ -> IssuedEnrolmentToken in
            let token = SecureRandom.token(byteCount: Self.tokenBytes)
            return IssuedEnrolmentToken(id: Self.tokenId(of: token), token: token, expires: expires, label: label)
        }
        try write { db in
            for token in issued {
                try db.execute(
                    sql: "INSERT INTO enrolment_token (hash, label, created, expires) VALUES (?, ?, ?, ?)",
                    arguments: [Self.hash(token.token), label, now.timeIntervalSince1970, expires.timeIntervalSince1970])
            }
        }
        return issued
    }

    /// Uses `token` to enrol the device `edgeId`, whose key has the SHA-256 `keyHash` (hex) and whose first
    /// certificate has `serial` and expires at `certificateExpires`, in one transaction: the token is marked used
    /// and the device recorded, or nothing changes.
    ///
    /// The same token, id and key again (a device that crashed before it stored its certificate) enrols again:
    /// the device's newest certificate becomes the one issued now.
    /// - Throws: ``ServeRefusal`` (`unauthenticated`) for an unknown, used or expired token; (`alreadyExists`)
    ///   for an id another device holds or held.
    public func enrol(
        token: String, edgeId: String, keyHash: String, serial: String, certificateExpires: Date, now: Date = Date()
    ) throws(ServeRefusal) -> EnrolledDevice {
        let hash = Self.hash(token)
        do {
            let device = try queue.write { db throws -> EnrolledDevice in
                guard let row = try Row.fetchOne(db, sql: "SELECT label, expires, used FROM enrolment_token WHERE hash = ?", arguments: [hash]) else {
                    throw ServeRefusal(.unauthenticated, "unknown enrolment token; ask the operator for one (flock-server admin enrol create)")
                }
                if (row["used"] as Double?) != nil {
                    if let held = try Row.fetchOne(
                        db, sql: "SELECT * FROM device WHERE edge_id = ? AND key_sha256 = ? AND token_id = ? AND revoked IS NULL",
                        arguments: [edgeId, keyHash, Self.tokenId(of: token)])
                    {
                        try db.execute(sql: "UPDATE device SET serial = ?, expires = ? WHERE edge_id = ?", arguments: [serial, certificateExpires.timeIntervalSince1970, edgeId])
                        var device = Self.device(from: held)
                        device.certificateSerial = serial
                        device.certificateExpires = certificateExpires
                        return device
                    }
                    throw ServeRefusal(.unauthenticated, "this enrolment token was used already; each token enrols one device, ask the operator for another")
                }
                guard (row["expires"] as Double) > now.timeIntervalSince1970 else {
                    throw ServeRefusal(.unauthenticated, "this enrolment token has expired; ask the operator for a new one")
                }
                if let held = try Row.fetchOne(db, sql: "SELECT revoked FROM device WHERE edge_id = ?", arguments: [edgeId]) {
                    let revoked = (held["revoked"] as Double?) != nil
                    throw ServeRefusal(
                        .alreadyExists,
                        "edge id \(edgeId) \(revoked ? "was revoked" : "is enrolled by another device"); enrol under another id (flock-edge enrol --id NEW_ID)")
                }
                let device = EnrolledDevice(
                    edgeId: edgeId, label: row["label"], tokenId: Self.tokenId(of: token), enrolledAt: now,
                    certificateSerial: serial, certificateExpires: certificateExpires, revokedAt: nil)
                try db.execute(sql: "UPDATE enrolment_token SET used = ?, used_by = ? WHERE hash = ?", arguments: [now.timeIntervalSince1970, edgeId, hash])
                try db.execute(
                    sql: "INSERT INTO device (edge_id, label, token_id, key_sha256, enrolled, serial, expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    arguments: [edgeId, device.label, device.tokenId, keyHash, now.timeIntervalSince1970, serial, certificateExpires.timeIntervalSince1970])
                return device
            }
            states.withLock { $0[edgeId] = true }
            return device
        } catch let refusal as ServeRefusal {
            throw refusal
        } catch {
            throw ServeRefusal(.unavailable, "the server could not record the enrolment (\(error)); try again later")
        }
    }

    /// Records the renewed certificate of an active device.
    /// - Throws: ``ServeRefusal`` (`permissionDenied`) for an unknown or revoked device; (`unavailable`) when the
    ///   file cannot be written.
    public func renew(edgeId: String, serial: String, certificateExpires: Date) throws(ServeRefusal) {
        guard isActive(edgeId) else {
            throw ServeRefusal(.permissionDenied, "device \(edgeId) is not enrolled or was revoked; enrol again with a new token under a new id")
        }
        do {
            try write { db in
                try db.execute(sql: "UPDATE device SET serial = ?, expires = ? WHERE edge_id = ?", arguments: [serial, certificateExpires.timeIntervalSince1970, edgeId])
            }
        } catch {
            throw ServeRefusal(.unavailable, "the server could not record the renewal (\(error.message)); try again later")
        }
    }

    /// Revokes a device: it is refused from its next call on, and its id cannot be enrolled again.
    /// - Returns: the device as it is now.
    /// - Throws: ``CoreError/Kind/invalidArgument`` for an id never enrolled; ``CoreError`` when the file cannot be written.
    @discardableResult
    public func revoke(edgeId: String, now: Date = Date()) throws(CoreError) -> EnrolledDevice {
        guard let current = device(edgeId) else {
            throw CoreError(.invalidArgument, "no enrolled device \(edgeId); flock-server admin devices list shows them")
        }
        if current.revokedAt != nil { return current }
        try write { db in
            try db.execute(sql: "UPDATE device SET revoked = ? WHERE edge_id = ?", arguments: [now.timeIntervalSince1970, edgeId])
        }
        states.withLock { $0[edgeId] = false }
        var revoked = current
        revoked.revokedAt = now
        return revoked
    }

    /// True when `token` was issued by this server (used, expired or not).
    public func issued(token: String) -> Bool {
        ((try? queue.read { db in try Row.fetchOne(db, sql: "SELECT 1 FROM enrolment_token WHERE hash = ?", arguments: [Self.hash(token)]) }) ?? nil) != nil
    }

    /// True for an enrolled device that is not revoked. Answered from memory.
    public func isActive(_ edgeId: String) -> Bool { states.withLock { $0[edgeId] ?? false } }

    /// The device enrolled under `edgeId`, if any.
    public func device(_ edgeId: String) -> EnrolledDevice? {
        (try? queue.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM device WHERE edge_id = ?", arguments: [edgeId]).map(Self.device(from:))
        }) ?? nil
    }

    /// Every enrolled device, by id.
    public func devices() throws(CoreError) -> [EnrolledDevice] {
        do {
            return try queue.read { db in try Row.fetchAll(db, sql: "SELECT * FROM device ORDER BY edge_id").map(Self.device(from:)) }
        } catch {
            throw CoreError(.io, "could not read \(Self.fileName): \(error)")
        }
    }

    /// The id under which audit events and devices name `token`.
    public static func tokenId(of token: String) -> String { String(hash(token).prefix(12)) }

    private static func hash(_ token: String) -> String { SHA256.hash(Array(token.utf8)).hex }

    private static func device(from row: Row) -> EnrolledDevice {
        EnrolledDevice(
            edgeId: row["edge_id"], label: row["label"], tokenId: row["token_id"],
            enrolledAt: Date(timeIntervalSince1970: row["enrolled"]), certificateSerial: row["serial"],
            certificateExpires: Date(timeIntervalSince1970: row["expires"]),
            revokedAt: (row["revoked"] as Double?).map { Date(timeIntervalSince1970: $0) })
    }

    private func write(_ body: (Database) throws -> Void) throws(CoreError) {
        do { try queue.write(body) } catch {
            throw CoreError(.io, "could not write \(Self.fileName): \(error)")
        }
    }
}
