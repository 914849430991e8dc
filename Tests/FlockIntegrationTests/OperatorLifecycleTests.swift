import FlockCore
import FlockServer
import FlockTestSupport
import Foundation
import Testing

/// What an operator sees and does: the logs of `serve` and `flock-edge run` (JSON lines, levels, nothing secret at
/// info), and their shutdown on SIGTERM (exit 0, state on disk, the edge gone from membership at once). Real
/// processes on 127.0.0.1, in plaintext (the logs and the shutdown do not depend on the transport).
@Suite(.serialized) struct OperatorLifecycleTests {
    static let digits = TestData.path("digits-train.csv")
    /// A small model on the digits rows, with short heartbeats: rounds of a fraction of a second.
    static let serve = [
        "--tls", "off", "--model", "mlp:16", "--input-features", "64", "--classes", "10", "--input-scale", "16",
        "--heartbeat", "0.3", "--min-clients", "2",
    ]

    /// Starts `flock-edge run` as `id` (also its process name) with `extra` arguments, in a state folder whose path
    /// does not hold the id (a path the operator chose is logged as it is).
    static func startEdge(_ fleet: Fleet, _ id: String, server: String, _ extra: [String] = []) throws {
        try fleet.start(id, TestData.executable("flock-edge"), [
            "run", "--tls", "off", "--server", server, "--data", digits, "--id", id, "--state-dir", fleet.folder + "/state-\(id.hashValue)",
        ] + extra)
    }

    /// Sends SIGTERM to `name` and waits (at most `seconds`) for it to exit; its exit status, or nil when it is still
    /// running or was killed by a signal.
    static func terminate(_ fleet: Fleet, _ name: String, seconds: Double) throws -> Int32? {
        let process = try #require(fleet.processes[name])
        kill(process.processIdentifier, SIGTERM)
        try fleet.wait("\(name) to exit after SIGTERM", seconds: seconds) { !process.isRunning }
        return process.terminationReason == .exit ? process.terminationStatus : nil
    }

    /// `flock-server admin WHAT --json` against the plaintext server of `fleet`, parsed.
    static func admin(_ fleet: Fleet, _ what: String) throws -> Any {
        let result = try TestData.run(
            TestData.executable("flock-server"), ["admin", what, "--json", "--tls", "off", "--data-dir", fleet.dataDirectory])
        guard result.status == 0 else { throw CoreError(.io, "admin \(what): \(result.error)") }
        return try JSONSerialization.jsonObject(with: Data(result.output.utf8))
    }

    static func completedRounds(_ fleet: Fleet) throws -> Int {
        (try admin(fleet, "status") as? [String: Any])?["completed_rounds"] as? Int ?? 0
    }

    static func clientIds(_ fleet: Fleet) throws -> [String] {
        (try admin(fleet, "clients") as? [[String: Any]] ?? []).compactMap { $0["edge_id"] as? String }
    }

    /// Every line of `log` as a JSON object with the fields of the JSON format; records an issue for any other line.
    static func jsonLines(_ log: String, of name: String) -> [[String: Any]] {
        log.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object["time"] is String, object["level"] is String, object["label"] is String, object["message"] is String,
                  object["metadata"] is [String: Any] else {
                Issue.record("\(name): not a JSON log line: \(line)")
                return nil
            }
            return object
        }
    }

    @Test func jsonLogsAreOneObjectPerLineAndNameNoTokenEdgeOrWeightAtInfo() throws {
        let fleet = Fleet()
        let server = try fleet.startServer(Self.serve + ["--log-format", "json"])
        let ids = ["alpha-edge-7", "beta-edge-9"]
        for id in ids { try Self.startEdge(fleet, id, server: server, ["--log-format", "json"]) }
        try fleet.wait("3 rounds") { try Self.completedRounds(fleet) >= 3 }

        let token = try String(contentsOfFile: fleet.dataDirectory + "/admin.token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // Numbers of the model as Swift prints them: none of them is logged.
        let (model, _) = try ModelFile.read(from: fleet.dataDirectory + "/global.flockmdl")
        let weights = model.parameters.prefix(50).map { "\($0)" }.filter { $0.count >= 8 }
        #expect(weights.count >= 10)

        for name in ["server"] + ids {
            let log = fleet.log(name)
            let lines = Self.jsonLines(log, of: name)
            #expect(lines.count >= 3, "\(name):\n\(log)")
            #expect(!log.contains(token), "\(name) logged the admin token")
            for id in ids { #expect(!log.contains(id), "\(name) logged the edge id \(id) at info:\n\(log.suffix(2000))") }
            for weight in weights { #expect(!log.contains(weight), "\(name) logged a weight of the model (\(weight))") }
            #expect(lines.allSatisfy { ["info", "notice", "warning", "error", "critical"].contains($0["level"] as? String) })
        }
        // Round events carry their round (and the model version) as numbers.
        let server_ = Self.jsonLines(fleet.log("server"), of: "server")
        let aggregated = server_.first { ($0["message"] as? String)?.contains("updates aggregated") == true }
        let metadata = try #require(aggregated?["metadata"] as? [String: Any])
        #expect(metadata["round"] is Int && metadata["version"] is Int, "\(metadata)")
        #expect(server_.contains { ($0["message"] as? String)?.hasPrefix("listening on \(server)") == true })
        #expect(server_.allSatisfy { $0["label"] as? String == "flock.server" })
    }

    @Test func atDebugLevelTheLogsNameTheEdges() throws {
        let fleet = Fleet()
        let server = try fleet.startServer(Self.serve + ["--log-format", "json", "--log-level", "debug"])
        let ids = ["gamma-edge-3", "delta-edge-4"]
        for id in ids { try Self.startEdge(fleet, id, server: server, ["--log-level", "debug"]) }
        try fleet.wait("a round") { try Self.completedRounds(fleet) >= 1 }

        let lines = Self.jsonLines(fleet.log("server"), of: "server")
        // The round's selection, with the selected edges' ids as metadata.
        let selected = lines.first { $0["level"] as? String == "debug" && ($0["metadata"] as? [String: Any])?["edge"] != nil }
        let named = try #require(selected?["metadata"] as? [String: Any])["edge"] as? [String]
        #expect(Set(named ?? []) == Set(ids), "\(String(describing: selected))")
        // In text, an edge's lines start with its id.
        #expect(fleet.log(ids[0]).contains("\(ids[0]): registered ("), "\(fleet.log(ids[0]))")
    }

    @Test func sigtermStopsAServingServerWithStatusZeroAndItsRoundsOnDiskForTheNextStart() throws {
        let fleet = Fleet()
        let server = try fleet.startServer(Self.serve)
        for id in ["edge-a", "edge-b"] { try Self.startEdge(fleet, id, server: server) }
        try fleet.wait("2 rounds") { try Self.completedRounds(fleet) >= 2 }
        let before = try Self.completedRounds(fleet)

        let started = Date()
        #expect(try Self.terminate(fleet, "server", seconds: 10) == 0, "\(fleet.log("server"))")
        let seconds = Date().timeIntervalSince(started)
        #expect(seconds < 10)
        #expect(fleet.log("server").contains("shutting down: no new rounds"), "\(fleet.log("server"))")
        #expect(!FileManager.default.fileExists(atPath: fleet.dataDirectory + "/serve.address"))
        // Every round completed before the signal is in the checkpoint.
        let saved = try #require(try RoundCheckpoint.read(fromFolder: fleet.dataDirectory))
        #expect(saved.model.round >= before)

        // A restarted server resumes from them; the edges find it again.
        try fleet.startServer(Self.serve + ["--listen", server], name: "restarted")
        #expect(try Self.completedRounds(fleet) >= saved.model.round)
        try fleet.wait("a round after the restart") { try Self.completedRounds(fleet) > saved.model.round }
        #expect(!fleet.log("restarted").contains("starts over"), "\(fleet.log("restarted"))")
    }

    @Test func sigtermStopsAnEdgeWithStatusZeroAndTheServerDropsItAtOnce() throws {
        let fleet = Fleet()
        // An edge timeout of 10 minutes: only the edge's goodbye can take it out of membership within the test.
        let server = try fleet.startServer(Self.serve + ["--edge-timeout", "600"])
        for id in ["edge-a", "edge-b"] { try Self.startEdge(fleet, id, server: server) }
        try fleet.wait("a round") { try Self.completedRounds(fleet) >= 1 }
        #expect(Set(try Self.clientIds(fleet)) == ["edge-a", "edge-b"])

        #expect(try Self.terminate(fleet, "edge-a", seconds: 15) == 0, "\(fleet.log("edge-a"))")
        #expect(fleet.log("edge-a").contains("left the federation"), "\(fleet.log("edge-a"))")
        try fleet.wait("the server to drop edge-a", seconds: 5) { try Self.clientIds(fleet) == ["edge-b"] }
        #expect(fleet.log("server").contains("an edge left"), "\(fleet.log("server"))")
        #expect(fleet.isRunning("server") && fleet.isRunning("edge-b"))
    }
}
