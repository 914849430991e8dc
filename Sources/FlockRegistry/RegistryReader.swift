import FlockCore
import FlockCrypto
import Foundation
import GRDB

/// Read access to a registry: versions, tags, aliases, the audit log, analyses, lineage, diffs, queries and
/// verification. `flock-server registry …` opens one read-only on the database file, so it works while the
/// server writes (WAL lets readers see the last committed state) and when the server is down.
public struct RegistryReader: Sendable {
    /// The server's data directory.
    public let dataDirectory: String
    /// The content-addressed model files.
    public let artifacts: ArtifactStore
    let database: any DatabaseReader

    /// The registry folder of a data directory.
    public static func folder(dataDirectory: String) -> String { dataDirectory + "/registry" }
    /// The database file of a data directory.
    public static func databasePath(dataDirectory: String) -> String { folder(dataDirectory: dataDirectory) + "/registry.sqlite" }

    init(dataDirectory: String, database: any DatabaseReader) {
        self.dataDirectory = dataDirectory
        self.database = database
        artifacts = ArtifactStore(registryFolder: Self.folder(dataDirectory: dataDirectory))
    }

    /// Opens the registry of `dataDirectory` read-only.
    /// - Throws: ``RegistryError/Code/notFound`` when there is no registry there yet, ``RegistryError/Code/database``
    ///   when SQLite cannot open it or its schema is newer than this program knows.
    public static func openReadOnly(dataDirectory: String) throws(RegistryError) -> RegistryReader {
        let path = databasePath(dataDirectory: dataDirectory)
        guard FileManager.default.fileExists(atPath: path) else {
            throw RegistryError(.notFound, "\(path): no registry here; the server creates it with its first version (or pass --data-dir)")
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.label = "flock-registry-reader"
        let pool: DatabasePool
        do { pool = try DatabasePool(path: path, configuration: configuration) } catch {
            throw RegistryError(.database, "\(path): cannot open the registry read-only", cause: error)
        }
        let reader = RegistryReader(dataDirectory: dataDirectory, database: pool)
        try reader.checkSchema()
        return reader
    }

    /// Refuses a file migrated by a newer program (it may hold tables this one does not understand).
    func checkSchema() throws(RegistryError) {
        let known = Set(RegistrySchema.migrator.migrations)
        let applied = try read { db in try RegistrySchema.migrator.appliedIdentifiers(db) }
        if let unknown = applied.first(where: { !known.contains($0) }) {
            throw RegistryError(.database, "the registry was migrated by a newer flock-server (\(unknown)); use that version")
        }
    }

    /// Runs `body` in a read transaction, turning SQLite's errors into ``RegistryError``.
    func read<T>(_ body: (Database) throws -> T) throws(RegistryError) -> T {
        do { return try database.read(body) } catch let error as RegistryError { throw error } catch {
            throw RegistryError(.database, "the registry database refused a read", cause: error)
        }
    }

    // MARK: - Versions

    /// Every version, newest first (or the first `limit`).
    public func versions(limit: Int? = nil) throws(RegistryError) -> [ModelVersion] {
        try read { db in try ModelVersion.order(ModelVersion.Columns.id.desc).limit(limit ?? Int.max).fetchAll(db) }
    }

    /// The version `id`.
    /// - Throws: ``RegistryError/Code/notFound`` when there is none.
    public func version(_ id: Int64) throws(RegistryError) -> ModelVersion {
        guard let found = try read({ db in try ModelVersion.fetchOne(db, key: id) }) else {
            throw RegistryError(.notFound, "no version \(id) in the registry; `flock-server registry list` shows them")
        }
        return found
    }

    /// Resolves what a user typed: a version number, an alias name, or a hash prefix of at least 6 hex digits.
    /// - Throws: ``RegistryError/Code/notFound`` when nothing matches, ``RegistryError/Code/invalidArgument`` when a
    ///   hash prefix is ambiguous.
    public func resolve(_ text: String) throws(RegistryError) -> ModelVersion {
        if let id = Int64(text) { return try version(id) }
        if let alias = try alias(text) { return try version(alias.version) }
        let prefix = text.lowercased()
        if prefix.count >= 6, prefix.allSatisfy(\.isHexDigit) {
            let matches = try read { db in
                try ModelVersion.filter(sql: "hash LIKE ?", arguments: [prefix + "%"]).fetchAll(db)
            }
            if matches.count == 1 { return matches[0] }
            if matches.count > 1 {
                throw RegistryError(.invalidArgument, "hash prefix \(text) matches versions \(matches.map { String($0.id) }.joined(separator: ", ")); give more digits")
            }
        }
        throw RegistryError(.notFound, "\(text) is neither a version number, an alias nor a known hash prefix")
    }

    /// The tags of version `id`.
    public func tags(_ id: Int64) throws(RegistryError) -> [String: String] {
        let rows = try read { db in try Row.fetchAll(db, sql: "SELECT key, value FROM tag WHERE version = ? ORDER BY key", arguments: [id]) }
        return Dictionary(uniqueKeysWithValues: rows.map { ($0["key"] as String, $0["value"] as String) })
    }

    /// The version with content `hash`, if registered.
    public func version(hash: String) throws(RegistryError) -> ModelVersion? {
        try read { db in try ModelVersion.filter(ModelVersion.Columns.hash == hash).order(ModelVersion.Columns.id).fetchOne(db) }
    }

    /// The newest version that round `round` produced, if registered.
    public func version(round: Int) throws(RegistryError) -> ModelVersion? {
        try read { db in try ModelVersion.filter(Column("round_last") == round).order(ModelVersion.Columns.id.desc).fetchOne(db) }
    }

    /// The versions from the root to `id`, following parents (oldest first), and `id`'s direct children.
    public func lineage(_ id: Int64) throws(RegistryError) -> (ancestry: [ModelVersion], children: [ModelVersion]) {
        var chain = [try version(id)]
        var seen: Set<Int64> = [id]
        while let parent = chain.last?.parent, !seen.contains(parent) {
            seen.insert(parent)
            chain.append(try version(parent))
        }
        let children = try read { db in try ModelVersion.filter(ModelVersion.Columns.parent == id).order(ModelVersion.Columns.id).fetchAll(db) }
        return (chain.reversed(), children)
    }

    // MARK: - Aliases and events

    /// Every alias.
    public func aliases() throws(RegistryError) -> [Alias] {
        try read { db in try Alias.order(Column("name")).fetchAll(db) }
    }

    /// The alias `name`, if set.
    public func alias(_ name: String) throws(RegistryError) -> Alias? {
        try read { db in try Alias.fetchOne(db, key: name) }
    }

    /// Aliases pointing at version `id`.
    public func aliases(of id: Int64) throws(RegistryError) -> [String] {
        try read { db in try String.fetchAll(db, sql: "SELECT name FROM alias WHERE version = ? ORDER BY name", arguments: [id]) }
    }

    /// The audit log, oldest first: all of it, an alias's moves, or a version's events.
    public func events(alias: String? = nil, version: Int64? = nil) throws(RegistryError) -> [RegistryEvent] {
        try read { db in
            var request = RegistryEvent.order(Column("id"))
            if let alias { request = request.filter(Column("alias") == alias) }
            if let version { request = request.filter(Column("version") == version || Column("previous_version") == version) }
            return try request.fetchAll(db)
        }
    }

    // MARK: - Analyses

    /// Analyses, newest first, optionally only those in `state`.
    public func analyses(state: Analysis.State? = nil) throws(RegistryError) -> [Analysis] {
        try read { db in
            var request = Analysis.order(Column("id").desc)
            if let state { request = request.filter(Column("state") == state.rawValue) }
            return try request.fetchAll(db)
        }
    }

    /// The running analysis of `kind`, if any.
    public func runningAnalysis(_ kind: Analysis.Kind) throws(RegistryError) -> Analysis? {
        try read { db in
            try Analysis.filter(Column("state") == Analysis.State.running.rawValue && Column("kind") == kind.rawValue)
                .order(Column("id").desc).fetchOne(db)
        }
    }

    /// The evidence each edge reported for analysis `id`.
    public func evidence(analysis id: Int64) throws(RegistryError) -> [EdgeEvidence] {
        try read { db in try EdgeEvidence.filter(Column("analysis") == id).order(Column("edge")).fetchAll(db) }
    }

    // MARK: - Artifacts

    /// The model file of version `id`, verified against its hash and the server's signature.
    /// - Throws: ``RegistryError/Code/integrity`` when either does not match, ``RegistryError/Code/notFound`` when
    ///   the artifact was collected.
    public func modelFile(of id: Int64) throws(RegistryError) -> [UInt8] {
        let v = try version(id)
        let bytes = try artifacts.read(v.hash)
        try checkSignature(of: v, publicKey: try ServerSigningKey.publicKey(dataDirectory: dataDirectory))
        return bytes
    }

    func checkSignature(of v: ModelVersion, publicKey: Ed25519.PublicKey) throws(RegistryError) {
        do { try ModelSignature.verify(signature: v.signature, hash: v.hash, publicKey: publicKey) } catch {
            throw RegistryError(.integrity, "version \(v.id): \(error.message)")
        }
    }
}
