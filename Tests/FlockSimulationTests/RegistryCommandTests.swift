import FlockCore
import FlockRegistry
import FlockTestSupport
import Foundation
import Testing

/// `flock-server simulate --data-dir` feeding a real registry, and every `flock-server registry` command
/// reading it afterwards, read-only, with no server running; and a simulation killed with SIGKILL while it
/// writes, which leaves a consistent database, whole artifacts, and one version per round once resumed.
@Suite(.serialized) struct RegistryCommandTests {
    static let binary = TestData.executable("flock-server")

    static func simulate(_ folder: String, rounds: Int, extra: [String] = []) -> [String] {
        [
            "simulate", "--train", TestData.path("mnist5k-train.csv"), "--eval", TestData.path("mnist5k-test.csv"), "--clients", "20",
            "--fraction", "0.5", "--rounds", String(rounds), "--secure-aggregation", "off", "--threads", "2", "--data-dir", folder,
            "--holdout", "0.2", "--min-pairs", "100", "--json",
        ] + extra
    }

    func registry(_ folder: String, _ arguments: [String]) throws -> TestData.ProcessResult {
        try TestData.run(Self.binary, ["registry"] + arguments + ["--data-dir", folder])
    }

    func json(_ result: TestData.ProcessResult) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(result.output.utf8))
    }

    @Test(arguments: [
        ["registry"], ["registry", "list"], ["registry", "show"], ["registry", "lineage"], ["registry", "history"], ["registry", "analyses"],
        ["registry", "diff"], ["registry", "query"], ["registry", "export"], ["registry", "verify"], ["registry", "retire"], ["registry", "gc"],
        ["registry", "alias", "set"], ["registry", "alias", "remove"], ["registry", "tag"],
        ["admin", "promote"], ["admin", "rollback"], ["admin", "pin"], ["admin", "unpin"],
    ])
    func everyRegistryCommandHasHelp(command: [String]) throws {
        let result = try TestData.run(Self.binary, command + ["--help"])
        #expect(result.status == 0 && result.output.contains("USAGE:") && result.output.contains("OVERVIEW:"))
        if command.first == "registry", command.count == 2 { #expect(result.output.contains("--data-dir") && result.output.contains("--json")) }
        if command.first == "admin" { #expect(result.output.contains("--reason")) }
    }

    @Test func theCommandsReadWhatSimulateRegisteredWithoutWritingIt() throws {
        let folder = TestData.temporaryFolder()
        let run = try TestData.run(Self.binary, Self.simulate(folder, rounds: 6))
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("promoted to production"))
        let database = RegistryReader.databasePath(dataDirectory: folder)
        let before = try FileManager.default.attributesOfItem(atPath: database)[.modificationDate] as? Date

        let versions = try json(try registry(folder, ["list", "--json"])) as? [[String: Any]] ?? []
        #expect(versions.map { $0["id"] as? Int } == [6, 5, 4, 3, 2, 1])
        #expect(versions.allSatisfy { ($0["hash"] as? String)?.count == 64 && ($0["signature"] as? String)?.count == 128 })
        #expect(versions.allSatisfy { $0["tags"] as? [String: String] == ["simulated": "true"] })
        let production = try json(try registry(folder, ["show", "production", "--json"])) as? [String: Any]
        #expect((production?["aliases"] as? [String])?.contains("production") == true)
        let shown = try registry(folder, ["show", "2"])
        #expect(shown.status == 0 && shown.output.contains("version            2") && shown.output.contains("created"))

        let lineage = try json(try registry(folder, ["lineage", "6", "--json"])) as? [String: Any]
        #expect((lineage?["ancestry"] as? [[String: Any]])?.map { $0["id"] as? Int } == [1, 2, 3, 4, 5, 6])
        let diff = try json(try registry(folder, ["diff", "1", "6", "--json"])) as? [String: Any]
        #expect((diff?["weight_distance"] as? Double ?? 0) > 0 && diff?["same_architecture"] as? Bool == true)
        let history = try registry(folder, ["history", "--alias", "production"])
        #expect(history.status == 0 && history.output.contains("promoted") && history.output.contains("first accepted version"))

        let best = try json(try registry(folder, ["query", "accuracy >= 0.8 order by accuracy desc limit 2", "--json"])) as? [[String: Any]] ?? []
        let accuracies = best.compactMap { $0["accuracy"] as? Double }
        #expect(accuracies.count == 2 && accuracies == accuracies.sorted(by: >) && accuracies.allSatisfy { $0 >= 0.8 })
        let bad = try registry(folder, ["query", "acc >= 1"])
        #expect(bad.status == 2 && bad.error.contains("unknown field 'acc'") && bad.error.contains("\n  ^"))

        let out = folder + "/exported.flockmdl"
        #expect(try registry(folder, ["export", "production", "--format", "flock", "--out", out]).status == 0)
        let (_, hash) = try ModelFile.read(from: out)
        #expect(hash.hex == production?["hash"] as? String)
        let onnx = try registry(folder, ["export", "3", "--format", "onnx", "--out", folder + "/v3.onnx", "--json"])
        let exported = try json(onnx) as? [String: Any]
        #expect(onnx.status == 0 && (exported?["bytes"] as? Int ?? 0) > 700_000)

        let verified = try registry(folder, ["verify"])
        #expect(verified.status == 0 && verified.output.contains("6 versions"))
        // Reading changed nothing.
        #expect(try FileManager.default.attributesOfItem(atPath: database)[.modificationDate] as? Date == before)

        // Writes: an alias of one's own, tags, and the aliases the server manages refused.
        #expect(try registry(folder, ["alias", "set", "stable", "3", "--reason", "the one we trust"]).status == 0)
        #expect(try registry(folder, ["tag", "3", "team=vision", "reviewed=yes"]).status == 0)
        let stable = try json(try registry(folder, ["query", "alias = stable and tag.team = vision", "--json"])) as? [[String: Any]] ?? []
        #expect(stable.map { $0["id"] as? Int } == [3])
        let moves = try json(try registry(folder, ["history", "--alias", "stable", "--json"])) as? [[String: Any]] ?? []
        #expect(moves.map { $0["kind"] as? String } == ["alias-moved"] && moves.first?["reason"] as? String == "the one we trust")
        let managed = try registry(folder, ["alias", "set", "production", "1", "--reason", "no"])
        #expect(managed.status == 64 && managed.error.contains("admin promote"))
        #expect(try registry(folder, ["alias", "remove", "stable", "--reason", "done"]).status == 0)
        #expect(try registry(folder, ["alias", "remove", "stable", "--reason", "again"]).status == 1)

        // One flipped byte in version 4's artifact: verify fails and names it; export refuses it.
        let version4 = try #require(versions.first { $0["id"] as? Int == 4 })
        let artifact = ArtifactStore(registryFolder: RegistryReader.folder(dataDirectory: folder)).path(of: version4["hash"] as! String)
        var bytes = try FileIO.read(artifact)
        bytes[1_000] ^= 0x40
        try FileIO.writeAtomically(bytes, to: artifact)
        let damaged = try registry(folder, ["verify"])
        #expect(damaged.status == 1 && damaged.output.contains("MISMATCH version 4"), "\(damaged.output)")
        #expect(try registry(folder, ["export", "4", "--out", folder + "/v4.flockmdl"]).status == 1)

        let nowhere = try registry(folder + "/nothing-here", ["list"])
        #expect(nowhere.status == 1 && nowhere.error.contains("no registry here"))
    }

    /// A registry of two versions written through the library (no simulation): version 1 accepted and in
    /// production, version 2 a candidate; version 1 tagged as `serve` tags its versions.
    static func twoVersions() throws -> (folder: String, hashes: [String]) {
        let folder = TestData.temporaryFolder()
        let registry = try Registry(dataDirectory: folder)
        let spec = try ModelSpec.preset("logreg", inputFeatures: 6, classCount: 3)
        var hashes: [String] = []
        for seed in [1, 2] as [UInt64] {
            let file = ModelFile(model: try Model(spec: spec, seed: seed), scaling: .none).encoded().bytes
            let v = try registry.register(NewVersion(
                file: file, parent: seed == 1 ? nil : 1, model: "logreg", rounds: Int(seed)...Int(seed), participants: 3 + Int(seed),
                strategy: "fedavg", codec: "f32", accuracy: [0.81, 0.82][Int(seed) - 1], loss: 0.5, uploadBytes: 100, downloadBytes: 200,
                tags: seed == 1 ? ["secure_aggregation": "on", "round": "1"] : [:]))
            hashes.append(v.hash)
        }
        try registry.setStatus(of: 1, to: .accepted, actor: "gate", reason: "ok")
        try registry.promote(1, actor: "policy", reason: "first")
        return (folder, hashes)
    }

    @Test func everyRegistryCommandAnswersInJSONUnderJSONAndItsErrorsToo() throws {
        let (folder, hashes) = try Self.twoVersions()
        // A long tag key lines up with the rest, with a gap before its value.
        let shown = try registry(folder, ["show", "1"])
        #expect(shown.status == 0 && shown.output.contains("tag.secure_aggregation  on"), "\(shown.output)")
        #expect(shown.output.hasPrefix("version" + String(repeating: " ", count: "tag.secure_aggregation".count + 2 - "version".count) + "1\n"))

        let show = try json(try registry(folder, ["show", "1", "--json"])) as? [String: Any]
        #expect((show?["events"] as? [[String: Any]])?.compactMap { $0["kind"] as? String } == ["created", "accepted", "promoted"])
        #expect(show?["id"] as? Int == 1 && (show?["tags"] as? [String: String])?["secure_aggregation"] == "on")

        let tagged = try json(try registry(folder, ["tag", "2", "team=vision", "--json"])) as? [String: Any]
        #expect(tagged?["version"] as? Int == 2 && tagged?["tags"] as? [String: String] == ["team": "vision"])
        let set = try json(try registry(folder, ["alias", "set", "stable", "2", "--reason", "trusted", "--json"])) as? [String: Any]
        #expect(set?["alias"] as? String == "stable" && set?["version"] as? Int == 2 && set?["reason"] as? String == "trusted")
        let removed = try json(try registry(folder, ["alias", "remove", "stable", "--reason", "done", "--json"])) as? [String: Any]
        #expect(removed?["alias"] as? String == "stable" && removed?["removed"] as? Bool == true)

        let diff = try json(try registry(folder, ["diff", "1", "2", "--json"])) as? [String: Any]
        let fields = Dictionary(uniqueKeysWithValues: (diff?["fields"] as? [[String: Any]] ?? []).map { ($0["name"] as? String ?? "", $0) })
        #expect(fields["accuracy"]?["first"] as? Double == 0.81 && fields["accuracy"]?["second"] as? Double == 0.82)
        #expect(fields["round"]?["first"] as? Int == 1 && fields["participants"]?["second"] as? Int == 5)
        #expect(fields["parent"]?["first"] is NSNull && fields["parent"]?["second"] as? Int == 1)
        #expect(fields["hash"]?["first"] as? String == hashes[0] && fields["tag.secure_aggregation"]?["second"] as? String == "-")

        let history = try json(try registry(folder, ["history", "--of", String(hashes[1].prefix(8)), "--json"])) as? [[String: Any]]
        #expect(history?.compactMap { $0["kind"] as? String } == ["created", "alias-moved", "alias-removed"])
        #expect(try registry(folder, ["history", "--help"]).output.contains("--of <VERSION>"))

        // Errors: one JSON object on standard error, with the exit code in it.
        let missing = try registry(folder, ["show", "99", "--json"])
        let missingError = try JSONSerialization.jsonObject(with: Data(missing.error.utf8)) as? [String: Any]
        #expect(missing.status == 1 && missing.output.isEmpty && missingError?["code"] as? Int == 1)
        #expect((missingError?["error"] as? String)?.contains("99") == true)
        let unparsed = try registry(folder, ["query", "acc >= 1", "--json"])
        let unparsedError = try JSONSerialization.jsonObject(with: Data(unparsed.error.utf8)) as? [String: Any]
        #expect(unparsed.status == 2 && unparsedError?["code"] as? Int == 2 && (unparsedError?["error"] as? String)?.contains("\n  ^") == true)

        // --state is a choice: listed in the help, a bad value is a usage error.
        let help = try registry(folder, ["analyses", "--help"]).output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(help.contains("(values: running, passed, failed, inconclusive)"), "\(help)")
        let badState = try registry(folder, ["analyses", "--state", "done"])
        #expect(badState.status == 64 && badState.error.contains("done"))
        #expect(try registry(folder, ["analyses", "--state", "running", "--json"]).output.hasPrefix("[]"))
    }

    @Test func theAnalysesListSaysWhenEvidenceCannotReachMinPairs() throws {
        let (folder, hashes) = try Self.twoVersions()
        let store = try Registry(dataDirectory: folder)
        let policy = try PromotionPolicy(registry: store, settings: PromotionSettings(
            analysis: AnalysisSettings(minimumPairs: 200, minimumEdges: 3), shadowShare: 1))
        try store.setStatus(of: 2, to: .accepted, actor: "gate", reason: "ok")
        let analysis = try store.startAnalysis(.shadow, treatment: 2, control: 1)
        var comparison = PairedComparison()
        comparison.bothRight = 30
        comparison.agreements = 30
        try policy.receive(edge: "a", analysis: analysis.id!, served: hashes[0], compared: hashes[1], comparison: comparison, cohortEdges: 4)
        let listed = try registry(folder, ["analyses", "--state", "running"])
        let text = listed.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(listed.status == 0 && text.contains("evidence cannot reach min_pairs"), "\(listed.output)")
        let analyses = try json(try registry(folder, ["analyses", "--json"])) as? [[String: Any]]
        #expect((analyses?.first?["reason"] as? String)?.contains("about 120 of the 200 pairs") == true)
    }

    @Test func deepQueriesAreParseErrorsAndTheQueryLanguageTakesHashPrefixes() throws {
        let (folder, hashes) = try Self.twoVersions()
        for depth in [100, 30_000] {
            let query = String(repeating: "(", count: depth) + "round > 1" + String(repeating: ")", count: depth)
            let result = try registry(folder, ["query", query])
            #expect(result.status == 2, "depth \(depth): \(result.status) \(result.error.prefix(300))")
            #expect(result.error.contains("nested more than \(RegistryQuery.maximumDepth) deep") && result.error.contains("(column 33)"))
            #expect(result.error.hasSuffix("  " + String(repeating: " ", count: 32) + "^\n"))
        }
        let found = try json(try registry(folder, ["query", "hash = \"\(hashes[1].prefix(6))\" or round in (1)", "--json"])) as? [[String: Any]]
        #expect(found?.compactMap { $0["id"] as? Int } == [2, 1])
    }

    @Test func aSimulationKilledWhileItWritesLeavesAConsistentRegistry() throws {
        let folder = TestData.temporaryFolder()
        let rounds = 30
        let arguments = Self.simulate(folder, rounds: rounds, extra: ["--state-dir", folder])
        var kills = 0
        for target in [4, 11, 19] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, process.isRunning {
                if let reader = try? RegistryReader.openReadOnly(dataDirectory: folder), let count = try? reader.versions().count, count >= target { break }
                Thread.sleep(forTimeInterval: 0.002)
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if process.terminationReason == .uncaughtSignal { kills += 1 }

            // Whatever the moment: SQLite's own checks pass, every version's artifact is whole and signed, and
            // every artifact file present hashes to its name (a torn write leaves only a temporary file).
            let verified = try registry(folder, ["verify", "--json"])
            #expect(verified.status == 0, "\(verified.output)")
            let store = ArtifactStore(registryFolder: RegistryReader.folder(dataDirectory: folder))
            for hash in store.storedHashes() { #expect((try? store.read(hash)) != nil, "artifact \(hash) is torn") }
        }
        #expect(kills >= 2, "the runs finished before they could be killed")
        let resumed = try TestData.run(Self.binary, arguments)
        #expect(resumed.status == 0, "\(resumed.error)")
        // Resumed rounds found the versions their killed runs had registered: one version per round, no gaps.
        let versions = try RegistryReader.openReadOnly(dataDirectory: folder).versions()
        #expect(versions.compactMap(\.roundLast).sorted() == Array(1...rounds))
        #expect(Set(versions.map(\.hash)).count == rounds)
        #expect(try registry(folder, ["verify"]).status == 0)
    }
}
