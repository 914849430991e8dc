import FlockCore
import FlockCrypto
import FlockTestSupport
import Foundation
import GRDB
import Testing

import FlockRegistry

/// A model file of the `2nn` architecture on 64 features with weights from `seed`.
func modelFile(seed: UInt64) throws -> [UInt8] {
    let spec = try ModelSpec.preset("2nn", inputFeatures: 64, classCount: 10)
    let model = try Model(spec: spec, seed: seed)
    return ModelFile(model: model, scaling: .none).encoded().bytes
}

/// A separate read-only SQLite connection to the registry of `folder`, as another process would open it.
func sqlite(_ folder: String) throws -> DatabasePool {
    var configuration = Configuration()
    configuration.readonly = true
    return try DatabasePool(path: RegistryReader.databasePath(dataDirectory: folder), configuration: configuration)
}

/// A new version of `seed`'s weights with holdout `accuracy`.
func newVersion(seed: UInt64, parent: Int64? = nil, round: Int, accuracy: Double?, tags: [String: String] = [:]) throws -> NewVersion {
    NewVersion(
        file: try modelFile(seed: seed), parent: parent, model: "2nn", rounds: round...round, participants: 10,
        strategy: "fedavg", codec: "fixed32", accuracy: accuracy, loss: accuracy.map { 1 - $0 }, uploadBytes: 1000,
        downloadBytes: 2000, tags: tags)
}

/// The registry on real SQLite files: migrations, content-addressed and signed artifacts, aliases and their
/// history, verification, garbage collection, queries, and readers beside a writer.
@Suite struct RegistryTests {
    @Test func migratesAnEmptyFileAndReopensIt() throws {
        let folder = TestData.temporaryFolder()
        let path = RegistryReader.databasePath(dataDirectory: folder)
        try FileManager.default.createDirectory(atPath: RegistryReader.folder(dataDirectory: folder), withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        do {
            let registry = try Registry(dataDirectory: folder)
            try registry.register(try newVersion(seed: 1, round: 1, accuracy: 0.8))
        }
        let reader = try RegistryReader.openReadOnly(dataDirectory: folder)
        #expect(try reader.versions().map(\.id) == [1])
        let tables = try sqlite(folder).read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") }
        #expect(Set(tables).isSuperset(of: ["alias", "analysis", "artifact", "event", "evidence", "tag", "version"]))
        let mode = try sqlite(folder).read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
        let migrations = try sqlite(folder).read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier") }
        #expect(migrations.count == 2 && migrations[0].hasPrefix("v1:") && migrations[1].hasPrefix("v2:"))
        let columns = try sqlite(folder).read { db in try Row.fetchAll(db, sql: "PRAGMA table_info(evidence)").map { $0["name"] as String } }
        #expect(columns.contains("latency_difference_ms"))
        // Reopening for writing applies nothing twice and keeps the rows.
        let again = try Registry(dataDirectory: folder)
        #expect(try again.reader.versions().count == 1)
    }

    @Test func aNewerSchemaIsRefused() throws {
        let folder = TestData.temporaryFolder()
        _ = try Registry(dataDirectory: folder)
        let queue = try DatabaseQueue(path: RegistryReader.databasePath(dataDirectory: folder))
        try queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99: from the future')") }
        #expect(throws: RegistryError.self) { _ = try Registry(dataDirectory: folder) }
        #expect(throws: RegistryError.self) { _ = try RegistryReader.openReadOnly(dataDirectory: folder) }
    }

    @Test func versionsAreContentAddressedSignedAndVerified() throws {
        let folder = TestData.temporaryFolder()
        let registry = try Registry(dataDirectory: folder)
        let first = try registry.register(try newVersion(seed: 1, round: 1, accuracy: 0.8, tags: ["team": "vision"]))
        let second = try registry.register(try newVersion(seed: 2, parent: first.id, round: 2, accuracy: 0.85))
        let bytes = try modelFile(seed: 1)
        #expect(first.hash == (try ModelFile.decode(bytes: bytes, source: "t").hash.hex))
        #expect(try registry.reader.modelFile(of: first.id) == bytes)
        #expect(try registry.reader.tags(first.id) == ["team": "vision"])
        #expect(try registry.reader.lineage(second.id).ancestry.map(\.id) == [1, 2])
        try ModelSignature.verify(signature: second.signature, hash: second.hash, publicKey: registry.publicKey)
        #expect(try registry.reader.verify().problems.isEmpty)
        #expect(try registry.reader.events(version: first.id).map(\.kind) == [.created])
        #expect((try FileManager.default.attributesOfItem(atPath: folder + "/server-signing.key")[.posixPermissions] as? Int) == 0o600)

        // One flipped byte in an artifact: refused on read and named by verify.
        let path = registry.reader.artifacts.path(of: second.hash)
        var damaged = try FileIO.read(path)
        damaged[damaged.count / 2] ^= 1
        try FileIO.writeAtomically(damaged, to: path)
        #expect(throws: RegistryError.self) { _ = try registry.reader.modelFile(of: second.id) }
        #expect(try registry.reader.verify().problems.map(\.version) == [second.id])

        // A signature made with another key: verify names the version.
        try FileIO.writeAtomically(try modelFile(seed: 2), to: path)
        let stranger = Ed25519.KeyPair.generate()
        let forged = ModelSignature.sign(SHA256.Digest(hex: first.hash)!, with: stranger)
        let queue = try DatabaseQueue(path: RegistryReader.databasePath(dataDirectory: folder))
        try queue.write { db in try db.execute(sql: "UPDATE version SET signature = ? WHERE id = 1", arguments: [forged]) }
        let problems = try registry.reader.verify().problems
        #expect(problems.map(\.version) == [first.id])
        #expect(problems.first?.message.contains("signature") == true)
        #expect(throws: RegistryError.self) { _ = try registry.reader.modelFile(of: first.id) }
    }

    @Test func productionMovesAtomicallyAndRollsBackThroughItsHistory() throws {
        let folder = TestData.temporaryFolder()
        let registry = try Registry(dataDirectory: folder)
        for seed in 1...5 { try registry.register(try newVersion(seed: UInt64(seed), round: seed, accuracy: 0.8)) }
        for id in 1...5 { try registry.setStatus(of: Int64(id), to: .accepted, actor: "gate", reason: "test") }
        try registry.promote(1, actor: "policy", reason: "first")
        try registry.promote(2, actor: "policy", reason: "better")
        try registry.promote(5, actor: "admin", reason: "forced", force: true)
        // Back to 2 (the previous production), not 4 (the newest older version).
        #expect(try registry.rollback(actor: "policy", reason: "5 regressed").version == 2)
        // Rolled back from 2 as well: 5 was rolled back from, so back to 1.
        #expect(try registry.rollback(actor: "policy", reason: "2 regressed").version == 1)
        #expect(throws: RegistryError.self) { try registry.rollback(actor: "policy", reason: "nothing left") }
        let moves = try registry.reader.events(alias: Alias.production)
        #expect(moves.map(\.kind) == [.promoted, .promoted, .promoted, .rolledBack, .rolledBack])
        #expect(moves.map(\.previousVersion) == [nil, 1, 2, 5, 2])
        // Exactly one production row, whatever happened.
        let count = try sqlite(folder).read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM alias WHERE name = 'production'") }
        #expect(count == 1)

        // A pinned production stays put for the policy; the operator may force it.
        try registry.pin(3, actor: "admin", reason: "freeze")
        #expect(throws: RegistryError.self) { try registry.promote(4, actor: "policy", reason: "newer") }
        #expect(throws: RegistryError.self) { try registry.rollback(actor: "policy", reason: "regressed") }
        try registry.unpin(actor: "admin", reason: "thaw")
        try registry.promote(4, actor: "policy", reason: "newer")
        #expect(try registry.reader.alias(Alias.production)?.version == 4)
        // A rejected version is not promoted without --force.
        try registry.setStatus(of: 5, to: .rejected, actor: "policy", reason: "bad")
        #expect(throws: RegistryError.self) { try registry.promote(5, actor: "admin", reason: "try") }
    }

    @Test func garbageCollectionRemovesRetiredArtifactsButKeepsTheRows() throws {
        let folder = TestData.temporaryFolder()
        let registry = try Registry(dataDirectory: folder)
        let kept = try registry.register(try newVersion(seed: 1, round: 1, accuracy: 0.8))
        let old = try registry.register(try newVersion(seed: 2, round: 2, accuracy: 0.7))
        try registry.setStatus(of: kept.id, to: .accepted, actor: "gate", reason: "ok")
        try registry.promote(kept.id, actor: "policy", reason: "first")
        #expect(throws: RegistryError.self) { try registry.setStatus(of: kept.id, to: .retired, actor: "admin", reason: "in production") }
        try registry.setStatus(of: old.id, to: .retired, actor: "admin", reason: "superseded")
        // A file without a row, as a crash between artifact and row leaves it.
        let orphan = try registry.reader.artifacts.store(try modelFile(seed: 3)).hash
        let collected = try registry.collectGarbage(actor: "admin")
        #expect(Set(collected.hashes) == [old.hash, orphan.hex])
        #expect(!FileManager.default.fileExists(atPath: registry.reader.artifacts.path(of: old.hash)))
        #expect(try registry.reader.version(old.id).status == .retired)
        #expect(try registry.reader.events(version: old.id).last?.kind == .collected)
        #expect(try registry.reader.verify().problems.isEmpty)
        #expect(try registry.reader.modelFile(of: kept.id).count > 0)
    }

    @Test func readersSeeCommittedStateWhileTheServerWrites() async throws {
        let folder = TestData.temporaryFolder()
        let registry = try Registry(dataDirectory: folder)
        try registry.register(try newVersion(seed: 1, round: 1, accuracy: 0.5))
        let files = try (2...41).map { try modelFile(seed: UInt64($0)) }
        let reader = try sqlite(folder)
        let seen = SeenCount()
        // Every wait has a deadline: a regression fails the test instead of hanging it.
        let deadline = ContinuousClock.now + .seconds(120)
        let writer = Task.detached {
            while seen.value < 1 {
                guard ContinuousClock.now < deadline else { throw PollTimeout(waitingFor: "the reader's first look") }
                try await Task.sleep(for: .milliseconds(1))
            }
            for (i, file) in files.enumerated() {
                let v = try registry.register(NewVersion(
                    file: file, parent: Int64(i + 1), model: "2nn", rounds: (i + 2)...(i + 2), participants: 3,
                    strategy: "fedavg", codec: "f32", accuracy: 0.5))
                try registry.moveAlias("latest", to: v.id, actor: "test", reason: "newest")
                // For the first versions, wait until the reader has seen each one: the interleaving is then certain.
                while i < 5, seen.value < i + 2 {
                    guard ContinuousClock.now < deadline else { throw PollTimeout(waitingFor: "the reader to see version \(i + 2)") }
                    try await Task.sleep(for: .milliseconds(1))
                }
            }
        }
        var observed: [Int] = []
        while observed.last ?? 0 < 41 {
            guard ContinuousClock.now < deadline else {
                writer.cancel()
                throw PollTimeout(waitingFor: "all 41 versions (the reader saw \(observed))")
            }
            // Every snapshot is consistent: the alias points at a version that exists, no row refers to a missing one.
            let (count, latest, dangling) = try await reader.read { db in
                (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM version")!,
                 try Int64.fetchOne(db, sql: "SELECT version FROM alias WHERE name = 'latest'"),
                 try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").count)
            }
            #expect(dangling == 0)
            if let latest { #expect(latest <= Int64(count)) }
            if observed.last != count { observed.append(count) }
            seen.value = count
            try await Task.sleep(for: .milliseconds(1))
        }
        try await writer.value
        #expect(observed == observed.sorted())
        #expect(Array(observed.prefix(6)) == [1, 2, 3, 4, 5, 6], "the reader saw \(observed)")
    }
}

/// A polling loop that passed its deadline.
struct PollTimeout: Error, CustomStringConvertible {
    var waitingFor: String
    var description: String { "gave up waiting for \(waitingFor)" }
}

/// `registry show`'s layout: every label, however long, keeps a gap before its value.
@Suite struct RegistryReportTests {
    @Test func longTagKeysAreNeverCutOrGluedToTheirValues() throws {
        let registry = try Registry(dataDirectory: TestData.temporaryFolder())
        let v = try registry.register(try newVersion(
            seed: 1, round: 1, accuracy: 0.8, tags: ["secure_aggregation": "on", "round": "1", "a_much_longer_tag_key_than_usual": "yes"]))
        let details = try RegistryReport.details([v], reader: registry.reader)[0]
        let text = RegistryReport.show(details, events: try registry.reader.events(version: v.id))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let tagLines = lines.filter { $0.hasPrefix("tag.") }
        #expect(tagLines.count == 3)
        // Every field's value starts in one column, past the longest label with at least two spaces.
        let column = "tag.a_much_longer_tag_key_than_usual".count + 2
        for (label, value) in [("tag.secure_aggregation", "on"), ("tag.round", "1"), ("tag.a_much_longer_tag_key_than_usual", "yes"), ("version", "1")] {
            #expect(lines.contains(label.padding(toLength: column, withPad: " ", startingAt: 0) + value), "\(text)")
        }
        // Short keys keep the usual layout.
        let plain = try registry.register(try newVersion(seed: 2, round: 2, accuracy: 0.8, tags: ["team": "vision"]))
        let shown = RegistryReport.show(try RegistryReport.details([plain], reader: registry.reader)[0], events: [])
        #expect(shown.contains("\nversion            2\n") || shown.hasPrefix("version            2\n"))
        #expect(shown.contains("tag.team           vision"))
    }
}

/// The version count the reader last saw, shared with the writer task.
final class SeenCount: @unchecked Sendable {
    // The lock makes every access to `stored` exclusive.
    private let lock = NSLock()
    private var stored = 0

    var value: Int {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
