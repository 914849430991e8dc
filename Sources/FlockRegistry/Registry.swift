import FlockCore
import FlockCrypto
import Foundation
import GRDB

/// The server's model registry: one SQLite file (WAL, foreign keys, migrations) and the content-addressed
/// artifacts beside it, under `DATA_DIR/registry/`.
///
/// Every state change is one transaction that also appends its audit event, so the log and the state never
/// disagree, and an alias move is a single-row update: there is never zero or two of an alias, even across a
/// crash. Artifacts are written (atomically) before any row names them. Reads go through ``reader``.
///
/// Modelled on MLflow's model registry (versions, aliases, lineage, search), with the content addressing and
/// signatures MLflow leaves to its store.
public final class Registry: Sendable {
    /// Read access (the same queries the CLI runs).
    public let reader: RegistryReader
    /// The server's signing key (public half), as `server-signing.pub` holds it.
    public let publicKey: Ed25519.PublicKey
    private let pool: DatabasePool
    private let key: Ed25519.KeyPair
    private let clock: @Sendable () -> Double

    /// Opens (creating and migrating when needed) the registry of `dataDirectory` for writing.
    /// - Parameter clock: the time stamped on rows (wall-clock seconds since 1970 unless a test sets it).
    /// - Throws: ``RegistryError/Code/database`` when SQLite cannot open or migrate the file (damaged, or of a
    ///   newer schema), ``RegistryError/Code/io`` for the folders and key.
    public init(dataDirectory: String, clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) throws(RegistryError) {
        let folder = RegistryReader.folder(dataDirectory: dataDirectory)
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw RegistryError(.io, "\(folder): cannot create the registry folder", cause: error)
        }
        key = try ServerSigningKey.loadOrCreate(dataDirectory: dataDirectory)
        publicKey = key.publicKey
        var configuration = Configuration()
        configuration.label = "flock-registry"
        configuration.busyMode = .timeout(10)
        let path = RegistryReader.databasePath(dataDirectory: dataDirectory)
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw RegistryError(.database, "\(path): cannot open the registry", cause: error)
        }
        reader = RegistryReader(dataDirectory: dataDirectory, database: pool)
        try reader.checkSchema()
        do { try RegistrySchema.migrator.migrate(pool) } catch {
            throw RegistryError(.database, "\(path): cannot migrate the registry", cause: error)
        }
        self.clock = clock
    }

    /// Runs `body` in one write transaction.
    private func write<T>(_ body: (Database) throws -> T) throws(RegistryError) -> T {
        do { return try pool.write(body) } catch let error as RegistryError { throw error } catch {
            throw RegistryError(.database, "the registry database refused a write", cause: error)
        }
    }

    private var now: Double { clock() }

    /// The server's signature (hex) of the model whose file hashes to `hash`, as ``ModelSignature`` defines it.
    public func sign(_ hash: SHA256.Digest) -> String { ModelSignature.sign(hash, with: key) }

    // MARK: - Versions

    /// Stores the model file, signs it and registers it as a `candidate`, with a `created` event.
    /// - Throws: ``RegistryError/Code/integrity`` for bytes that are not a model file,
    ///   ``RegistryError/Code/notFound`` for a parent that does not exist.
    @discardableResult
    public func register(_ new: NewVersion, actor: String = "server") throws(RegistryError) -> ModelVersion {
        let (hash, parameters) = try reader.artifacts.store(new.file)
        let moment = now
        let signature = ModelSignature.sign(hash, with: key)
        return try write { db in
            if let parent = new.parent, try ModelVersion.fetchOne(db, key: parent) == nil {
                throw RegistryError(.notFound, "parent version \(parent) is not in the registry")
            }
            try db.execute(
                sql: "INSERT OR IGNORE INTO artifact (hash, bytes, stored_at) VALUES (?, ?, ?)",
                arguments: [hash.hex, new.file.count, moment])
            try db.execute(sql: "UPDATE artifact SET collected_at = NULL WHERE hash = ?", arguments: [hash.hex])
            let id = (try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM version") ?? 0) + 1
            let version = ModelVersion(
                id: id, hash: hash.hex, signature: signature, parent: new.parent, model: new.model, parameters: parameters,
                roundFirst: new.rounds?.lowerBound, roundLast: new.rounds?.upperBound, participants: new.participants,
                strategy: new.strategy, codec: new.codec, accuracy: new.accuracy, loss: new.loss,
                federatedAccuracy: new.federatedAccuracy, federatedLoss: new.federatedLoss, uploadBytes: new.uploadBytes,
                downloadBytes: new.downloadBytes, createdAt: moment, status: .candidate, statusReason: nil)
            try version.insert(db)
            for (key, value) in new.tags {
                try db.execute(sql: "INSERT INTO tag (version, key, value) VALUES (?, ?, ?)", arguments: [id, key, value])
            }
            var event = RegistryEvent(
                at: moment, kind: .created, version: id, actor: actor,
                reason: "registered from round" + (new.rounds.map { $0.count == 1 ? " \($0.upperBound)" : "s \($0.lowerBound)-\($0.upperBound)" } ?? "s: none"))
            try event.insert(db)
            return version
        }
    }

    /// Adds federated metrics that arrived after the version was registered (edges evaluate a model in the
    /// round after it was made).
    public func setFederatedMetrics(of id: Int64, accuracy: Double, loss: Double) throws(RegistryError) {
        try write { db in
            try db.execute(
                sql: "UPDATE version SET federated_accuracy = ?, federated_loss = ? WHERE id = ?",
                arguments: [accuracy, loss, id])
        }
    }

    /// Sets a tag (replacing the old value).
    public func setTag(_ key: String, _ value: String, on id: Int64) throws(RegistryError) {
        _ = try reader.version(id)
        try write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO tag (version, key, value) VALUES (?, ?, ?)", arguments: [id, key, value])
        }
    }

    /// Records the gate's (or an operator's) decision on a version: `accepted`, `rejected` or `retired`.
    public func setStatus(
        of id: Int64, to status: ModelVersion.Status, actor: String, reason: String, evidence: String? = nil
    ) throws(RegistryError) {
        let kind: RegistryEvent.Kind
        switch status {
        case .accepted: kind = .accepted
        case .rejected: kind = .rejected
        case .retired: kind = .retired
        case .candidate: throw RegistryError(.invalidArgument, "a version cannot go back to candidate")
        }
        let moment = now
        try write { db in
            guard try ModelVersion.fetchOne(db, key: id) != nil else { throw RegistryError(.notFound, "no version \(id)") }
            if status == .retired, let held = try String.fetchOne(db, sql: "SELECT name FROM alias WHERE version = ?", arguments: [id]) {
                throw RegistryError(.conflict, "version \(id) is \(held); move that alias before retiring it")
            }
            try db.execute(sql: "UPDATE version SET status = ?, status_reason = ? WHERE id = ?", arguments: [status.rawValue, reason, id])
            var event = RegistryEvent(at: moment, kind: kind, version: id, actor: actor, reason: reason, evidence: evidence)
            try event.insert(db)
        }
    }

    // MARK: - Aliases

    /// Moves (or sets) alias `name` to version `id` in one transaction with its event.
    @discardableResult
    public func moveAlias(
        _ name: String, to id: Int64, kind: RegistryEvent.Kind = .aliasMoved, actor: String, reason: String, evidence: String? = nil
    ) throws(RegistryError) -> RegistryEvent {
        let moment = now
        return try write { db in
            try Self.move(db, alias: name, to: id, kind: kind, actor: actor, reason: reason, evidence: evidence, pinned: nil, at: moment)
        }
    }

    /// Removes alias `name`, with an `alias-removed` event; nothing when it is not set.
    public func removeAlias(_ name: String, actor: String, reason: String) throws(RegistryError) {
        guard name != Alias.production else { throw RegistryError(.invalidArgument, "production cannot be removed, only moved") }
        let moment = now
        try write { db in
            guard let current = try Alias.fetchOne(db, key: name) else { return }
            var event = RegistryEvent(at: moment, kind: .aliasRemoved, version: nil, alias: name, previousVersion: current.version, actor: actor, reason: reason)
            try event.insert(db)
            _ = try Alias.deleteOne(db, key: name)
        }
    }

    private static func move(
        _ db: Database, alias name: String, to id: Int64, kind: RegistryEvent.Kind, actor: String, reason: String,
        evidence: String?, pinned: Bool?, at moment: Double
    ) throws -> RegistryEvent {
        guard let target = try ModelVersion.fetchOne(db, key: id) else { throw RegistryError(.notFound, "no version \(id) in the registry") }
        guard name.range(of: "^[A-Za-z][A-Za-z0-9_.-]{0,63}$", options: .regularExpression) != nil else {
            throw RegistryError(.invalidArgument, "alias \(name): use a letter, then letters, digits, '_', '.' or '-' (64 at most)")
        }
        if name == Alias.production, target.status == .retired {
            throw RegistryError(.conflict, "version \(id) is retired and cannot serve production")
        }
        let current = try Alias.fetchOne(db, key: name)
        var event = RegistryEvent(
            at: moment, kind: kind, version: id, alias: name, previousVersion: current?.version, actor: actor, reason: reason, evidence: evidence)
        try event.insert(db)
        try Alias(name: name, version: id, pinned: pinned ?? current?.pinned ?? false, event: event.id!).save(db)
        return event
    }

    /// Moves `production` to version `id` (an operator's or the policy's promotion).
    /// - Parameter force: an operator's override: promotes a version the gate did not accept, and a pinned production.
    /// - Throws: ``RegistryError/Code/conflict`` when production is pinned or the version is not accepted (without
    ///   `force`).
    @discardableResult
    public func promote(_ id: Int64, actor: String, reason: String, evidence: String? = nil, force: Bool = false) throws(RegistryError) -> RegistryEvent {
        let moment = now
        return try write { db in
            guard let v = try ModelVersion.fetchOne(db, key: id) else { throw RegistryError(.notFound, "no version \(id) in the registry") }
            let current = try Alias.fetchOne(db, key: Alias.production)
            if current?.version == id { throw RegistryError(.conflict, "version \(id) is already production") }
            if let current, current.pinned, !force {
                throw RegistryError(.conflict, "production is pinned to version \(current.version); unpin it first (or --force)")
            }
            if v.status != .accepted, !force {
                throw RegistryError(.conflict, "version \(id) is \(v.status.rawValue), not accepted; promote it with --force to override the gate")
            }
            return try Self.move(db, alias: Alias.production, to: id, kind: .promoted, actor: actor, reason: reason, evidence: evidence, pinned: false, at: moment)
        }
    }

    /// Moves `production` back: to `target`, or to the previous production taken from the alias history
    /// (skipping versions that were themselves rolled back from).
    /// - Parameter force: an operator's rollback of a pinned production: it clears the pin, and the event's reason
    ///   says so.
    /// - Throws: ``RegistryError/Code/conflict`` when there is no earlier production, or production is pinned and
    ///   `force` is false (the policy's rollbacks).
    @discardableResult
    public func rollback(to target: Int64? = nil, actor: String, reason: String, evidence: String? = nil, force: Bool = false) throws(RegistryError) -> RegistryEvent {
        let moment = now
        return try write { db in
            guard let current = try Alias.fetchOne(db, key: Alias.production) else {
                throw RegistryError(.conflict, "there is no production to roll back")
            }
            if current.pinned, !force { throw RegistryError(.conflict, "production is pinned to version \(current.version); unpin it first") }
            let destination: Int64
            if let target {
                destination = target
            } else if let previous = try Self.previousProduction(db, current: current.version) {
                destination = previous
            } else {
                throw RegistryError(.conflict, "production (version \(current.version)) has no earlier production to roll back to")
            }
            guard destination != current.version else { throw RegistryError(.conflict, "version \(destination) is already production") }
            let recorded = current.pinned ? reason + " " + Self.pinCleared(current.version) : reason
            return try Self.move(db, alias: Alias.production, to: destination, kind: .rolledBack, actor: actor, reason: recorded, evidence: evidence, pinned: false, at: moment)
        }
    }

    /// The production before `current` in the alias history, skipping `current`, versions that production was
    /// rolled back from, and retired versions.
    static func previousProduction(_ db: Database, current: Int64) throws -> Int64? {
        let moves = try RegistryEvent.filter(Column("alias") == Alias.production).order(Column("id").desc).fetchAll(db)
        let rolledBackFrom = Set(moves.filter { $0.kind == .rolledBack }.compactMap(\.previousVersion))
        for move in moves {
            guard let v = move.version, v != current, !rolledBackFrom.contains(v) else { continue }
            if let row = try ModelVersion.fetchOne(db, key: v), row.status != .retired { return v }
        }
        return nil
    }

    /// The production before the current one (what a rollback would move to), if any.
    public func previousProduction() throws(RegistryError) -> Int64? {
        try reader.read { db in
            guard let current = try Alias.fetchOne(db, key: Alias.production) else { return nil }
            return try Self.previousProduction(db, current: current.version)
        }
    }

    /// What a rollback's reason says when it cleared the pin on `version`.
    public static func pinCleared(_ version: Int64) -> String {
        "(production was pinned to version \(version); the rollback cleared the pin)"
    }

    /// Pins `production` to version `id` (moving it there first when it points elsewhere): the policy will not
    /// move it until ``unpin(actor:reason:)``.
    /// - Parameter force: an operator's override that moves production to a version the gate did not accept;
    ///   pinning the version that already serves production needs none.
    /// - Returns: the `pinned` event (its `previousVersion` is the production before).
    /// - Throws: ``RegistryError/Code/conflict`` when production would move to a version that is not accepted and
    ///   `force` is false, or to a retired version; ``RegistryError/Code/notFound`` for no such version.
    @discardableResult
    public func pin(_ id: Int64, actor: String, reason: String, force: Bool = false) throws(RegistryError) -> RegistryEvent {
        let moment = now
        return try write { db in
            guard let v = try ModelVersion.fetchOne(db, key: id) else { throw RegistryError(.notFound, "no version \(id) in the registry") }
            let current = try Alias.fetchOne(db, key: Alias.production)
            if current?.version != id, v.status != .accepted, !force {
                throw RegistryError(.conflict, "version \(id) is \(v.status.rawValue), not accepted; pin it with --force to override the gate")
            }
            return try Self.move(db, alias: Alias.production, to: id, kind: .pinned, actor: actor, reason: reason, evidence: nil, pinned: true, at: moment)
        }
    }

    /// Unpins `production`.
    public func unpin(actor: String, reason: String) throws(RegistryError) {
        let moment = now
        try write { db in
            guard var current = try Alias.fetchOne(db, key: Alias.production), current.pinned else {
                throw RegistryError(.conflict, "production is not pinned")
            }
            var event = RegistryEvent(at: moment, kind: .unpinned, version: current.version, alias: Alias.production,
                                      previousVersion: current.version, actor: actor, reason: reason)
            try event.insert(db)
            current.pinned = false
            current.event = event.id!
            try current.update(db)
        }
    }

    // MARK: - Analyses

    /// Starts an analysis of `treatment` against `control`; a running analysis of the same kind ends
    /// inconclusive, superseded.
    @discardableResult
    public func startAnalysis(_ kind: Analysis.Kind, treatment: Int64, control: Int64, actor: String = "policy") throws(RegistryError) -> Analysis {
        let moment = now
        return try write { db in
            for var running in try Analysis.filter(Column("state") == Analysis.State.running.rawValue && Column("kind") == kind.rawValue).fetchAll(db) {
                running.state = .inconclusive
                running.decidedAt = moment
                running.reason = "superseded by a new \(kind.rawValue) analysis of version \(treatment)"
                try running.update(db)
                var event = RegistryEvent(at: moment, kind: .analysisDecided, version: running.treatment, actor: actor,
                                          reason: "analysis \(running.id!) (\(kind.rawValue)) inconclusive: \(running.reason!)")
                try event.insert(db)
            }
            var analysis = Analysis(kind: kind, treatment: treatment, control: control, state: .running, looks: 0, startedAt: moment)
            try analysis.insert(db)
            if kind == .shadow {
                _ = try Self.move(db, alias: Alias.shadow, to: treatment, kind: .shadowStarted, actor: actor,
                                  reason: "shadow analysis \(analysis.id!) against production version \(control)", evidence: nil, pinned: nil, at: moment)
            }
            return analysis
        }
    }

    /// Stores one edge's evidence for a running analysis (replacing its earlier report).
    /// - Throws: ``RegistryError/Code/invalidArgument`` for counts that are negative, inconsistent or not finite;
    ///   ``RegistryError/Code/conflict`` when the analysis is not running.
    public func record(_ evidence: EdgeEvidence) throws(RegistryError) {
        guard evidence.isValid else {
            throw RegistryError(.invalidArgument, "evidence from \(evidence.edge): counts must be non-negative and consistent, numbers finite")
        }
        try write { db in
            guard let analysis = try Analysis.fetchOne(db, key: evidence.analysis), analysis.state == .running else {
                throw RegistryError(.conflict, "analysis \(evidence.analysis) is not running")
            }
            try evidence.save(db)
        }
    }

    /// Ends an analysis with `state`, its looks and reason, and an `analysis-decided` event carrying the evidence.
    public func decide(_ id: Int64, state: Analysis.State, looks: Int, reason: String, evidence: String?, actor: String = "policy") throws(RegistryError) {
        let moment = now
        try write { db in
            guard var analysis = try Analysis.fetchOne(db, key: id), analysis.state == .running else {
                throw RegistryError(.conflict, "analysis \(id) is not running")
            }
            analysis.state = state
            analysis.looks = looks
            analysis.decidedAt = state == .running ? nil : moment
            analysis.reason = reason
            try analysis.update(db)
            guard state != .running else { return }
            var event = RegistryEvent(at: moment, kind: .analysisDecided, version: analysis.treatment, previousVersion: analysis.control,
                                      actor: actor, reason: "analysis \(id) (\(analysis.kind.rawValue)) \(state.rawValue): \(reason)", evidence: evidence)
            try event.insert(db)
        }
    }

    // MARK: - Garbage collection

    /// Removes the artifacts of retired versions that no alias points at (their rows stay, marked collected,
    /// each with a `collected` event), files that no row names, and temporary files a crash left.
    /// - Returns: the hashes removed and the bytes freed.
    public func collectGarbage(actor: String) throws(RegistryError) -> (hashes: [String], bytes: Int64) {
        let moment = now
        let store = reader.artifacts
        let collectable = try write { db -> [(hash: String, bytes: Int64, versions: [Int64])] in
            let rows = try Row.fetchAll(db, sql: """
                SELECT a.hash AS hash, a.bytes AS bytes, group_concat(v.id) AS versions FROM artifact a JOIN version v ON v.hash = a.hash
                WHERE a.collected_at IS NULL GROUP BY a.hash
                HAVING SUM(v.status != 'retired') = 0 AND SUM(v.id IN (SELECT version FROM alias)) = 0
                """)
            var out: [(String, Int64, [Int64])] = []
            for row in rows {
                let hash: String = row["hash"]
                let versions = (row["versions"] as String).split(separator: ",").compactMap { Int64($0) }
                try db.execute(sql: "UPDATE artifact SET collected_at = ? WHERE hash = ?", arguments: [moment, hash])
                for v in versions {
                    var event = RegistryEvent(at: moment, kind: .collected, version: v, actor: actor, reason: "artifact \(hash.prefix(12)) removed by gc")
                    try event.insert(db)
                }
                out.append((hash, row["bytes"], versions))
            }
            return out
        }
        var removed = collectable.map(\.hash)
        var freed = collectable.reduce(Int64(0)) { $0 + $1.bytes }
        for item in collectable { store.remove(item.hash) }
        // Files no row names (a crash between the file and its row) and leftover temporary files.
        let known = Set(try reader.read { db in try String.fetchAll(db, sql: "SELECT hash FROM artifact") })
        for hash in store.storedHashes() where !known.contains(hash) {
            let size = (try? FileManager.default.attributesOfItem(atPath: store.path(of: hash))[.size] as? Int64) ?? 0
            store.remove(hash)
            removed.append(hash)
            freed += size
        }
        if let enumerator = FileManager.default.enumerator(atPath: store.folder) {
            while let entry = enumerator.nextObject() as? String {
                let name = (entry as NSString).lastPathComponent
                if name.hasPrefix("."), name.contains(".tmp-") { try? FileManager.default.removeItem(atPath: store.folder + "/" + entry) }
            }
        }
        return (removed, freed)
    }
}
