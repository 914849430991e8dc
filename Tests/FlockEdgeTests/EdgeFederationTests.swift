import FlockCore
import FlockEdge
import FlockTestSupport
import Foundation
import Testing

/// `flock-edge run` against real `flock-server serve` processes: one edge per state folder, a session taken
/// over by another process backs off, a server with a new signing key is refused but the edge stays up and
/// says what to do, and data that do not fit the server's model make the edge decline the round.
@Suite struct EdgeFederationTests {
    static let digits = TestData.path("digits-train.csv")

    /// A second `flock-edge run` on a state folder in use stops at once, with exit status 1 and a message
    /// naming the folder, the holder and `--state-dir`; the first keeps running, and another folder is fine.
    @Test func aSecondEdgeOnAStateFolderInUseStopsAtOnce() throws {
        let edges = EdgeProcesses()
        let state = edges.folder + "/state"
        // Nothing listens on port 9: the edges wait for a server, which is all this needs.
        let run = ["run", "--server", "127.0.0.1:9", "--data", Self.digits]
        try edges.startEdge("first", run + ["--state-dir", state])
        try edges.wait("the first edge to claim its folder") { edges.log("first").contains("connecting to") }

        try edges.startEdge("second", run + ["--state-dir", state])
        try edges.wait("the second edge to stop", seconds: 30) { !edges.isRunning("second") }
        let pid = try #require(edges.processes["first"]).processIdentifier
        #expect(edges.processes["second"]?.terminationStatus == 1)
        #expect(
            edges.log("second") == "error: the state folder \(state) is in use by another flock-edge (pid \(pid)). Every edge needs its own "
                + "state folder (it holds the edge's id): start this one with --state-dir DIR naming another folder, or stop the other first\n")
        #expect(edges.isRunning("first"))

        try edges.startEdge("third", run + ["--state-dir", edges.folder + "/other"])
        try edges.wait("the third edge to start") { edges.log("third").contains("connecting to") }
        #expect(edges.isRunning("third"))
        // The two folders hold two ids, and are their owner's alone.
        let ids = try [state, edges.folder + "/other"].map { try String(contentsOfFile: $0 + "/edge.id", encoding: .utf8) }
        #expect(ids[0] != ids[1])
        for folder in [state, edges.folder + "/other"] {
            #expect(try FileManager.default.attributesOfItem(atPath: folder)[.posixPermissions] as? Int == 0o700, "\(folder)")
        }
    }

    /// Two edges under one id (in two folders) take the session from each other. Each waits 1 s, 2 s, 4 s, …
    /// (with jitter, at least half of each) before registering again, so over 10 s each logs at most 6 such lines,
    /// however fast the machine (without the backoff: thousands).
    @Test func aSessionTakenOverByAnotherProcessBacksOff() throws {
        let edges = EdgeProcesses()
        let server = try edges.startServer(dataDirectory: edges.folder + "/server", ["--heartbeat", "0.3", "--wait-for-start"])
        for name in ["twin-a", "twin-b"] {
            try edges.startEdge(name, ["run", "--server", server, "--data", Self.digits, "--id", "twin", "--state-dir", edges.folder + "/" + name])
        }
        let ended = "warning: the server ended this session"
        try edges.wait("a session to be taken over") { edges.count("twin-a", ended) + edges.count("twin-b", ended) > 0 }
        let start = Date()
        try edges.wait("10 s to pass", seconds: 30) { Date().timeIntervalSince(start) >= 10 }
        for name in ["twin-a", "twin-b"] {
            #expect(edges.count(name, ended) <= 6, "\(name):\n\(edges.log(name).suffix(3000))")
            #expect(edges.isRunning(name))
        }
        // The log says why the session keeps ending and what to do.
        #expect((edges.log("twin-a") + edges.log("twin-b")).contains("give each edge its own --id or --state-dir"))
    }

    /// The backoff schedule as a value: 1 s doubling to 60 s, each wait between half and all of its step.
    @Test func theTakeoverBackoffDoublesFromOneSecondToAMinute() {
        var low = Backoff(initial: 1, maximum: 60), high = low
        let waits = (0..<9).map { _ in (low.next(unit: 0), high.next(unit: 0.999_999)) }
        let steps: [Double] = [1, 2, 4, 8, 16, 32, 60, 60, 60]
        for ((least, most), step) in zip(waits, steps) {
            #expect(least == step / 2)
            #expect(most <= step && most > step * 0.99)
        }
        low.reset()
        #expect(low.next(unit: 0) == 0.5)
    }

    /// An edge whose rows do not fit the server's model (64 features against 784) is selected, fetches the model,
    /// and leaves the round at once: one line that says what to do, a `declined` heartbeat, and no "server
    /// unreachable". It keeps running, and the server does not wait for it until the round timeout.
    @Test(arguments: ["off", "on"])
    func anEdgeWhoseDataDoNotFitTheModelLeavesTheRoundAtOnce(secureAggregation: String) throws {
        let edges = EdgeProcesses()
        let data = edges.folder + "/server"
        // Without secure aggregation the round would wait 600 s for the edge; with it, each key phase 20 s: round 1
        // must end well before either.
        let server = try edges.startServer(dataDirectory: data, [
            "--heartbeat", "0.3", "--min-clients", "2", "--clients-per-round", "2", "--secure-aggregation", secureAggregation,
            "--round-timeout", "600", "--wait-for-start",
        ])
        try edges.startEdge("narrow", ["run", "--server", server, "--data", Self.digits, "--id", "narrow", "--state-dir", edges.folder + "/narrow"])
        try edges.startEdge("fitting", [
            "run", "--server", server, "--data", TestData.path("mnist5k-test.csv"), "--id", "fitting", "--state-dir", edges.folder + "/fitting",
        ])
        try edges.wait("both edges to register") { edges.log("narrow").contains("registered") && edges.log("fitting").contains("registered") }
        let start = try TestData.run(TestData.executable("flock-server"), ["admin", "start", "--data-dir", data])
        #expect(start.status == 0, "\(start.error)")
        let leaving = "warning: round 1: leaving the round: this edge's data has 64 features per row but the server's model takes 784; "
            + "point --data at data for this model (now \(Self.digits))"
        try edges.wait("the edge to leave round 1") { edges.log("narrow").contains(leaving) }
        // The server drops it from the round at once and does not select it again.
        try edges.wait("round 1 to end", seconds: 15) {
            let rounds = try TestData.run(TestData.executable("flock-server"), ["admin", "rounds", "--json", "--data-dir", data])
            let list = try JSONSerialization.jsonObject(with: Data(rounds.output.utf8)) as? [[String: Any]] ?? []
            return list.first.map { $0["state"] as? String != "open" && $0["state"] as? String != "running" } ?? false
        }
        #expect(edges.count("narrow", "leaving the round") == 1, "\(edges.log("narrow"))")
        #expect(!edges.log("narrow").contains("server unreachable"), "\(edges.log("narrow"))")
        #expect(edges.isRunning("narrow"))
        let clients = try TestData.run(TestData.executable("flock-server"), ["admin", "clients", "--json", "--data-dir", data])
        let states = (try JSONSerialization.jsonObject(with: Data(clients.output.utf8)) as? [[String: Any]] ?? [])
            .reduce(into: [String: String]()) { $0[$1["edge_id"] as? String ?? ""] = $1["state"] as? String }
        #expect(states["narrow"] == "declined", "\(states)")
    }

    /// A server restarted with a fresh data directory signs with a new key. The edge refuses it, says so and
    /// what to do, keeps running and retrying; once the pinned key is removed it pins the new one and registers.
    @Test func anEdgeRefusesAServerWithANewKeyButStaysUpAndRecoversWhenThePinIsRemoved() throws {
        let edges = EdgeProcesses()
        let state = edges.folder + "/edge"
        let arguments = ["--heartbeat", "0.3", "--wait-for-start"]
        let server = try edges.startServer("a", dataDirectory: edges.folder + "/a", arguments)
        // At debug level the edge's lines carry its id.
        try edges.startEdge("edge", ["run", "--server", server, "--data", Self.digits, "--id", "e", "--state-dir", state, "--log-level", "debug"])
        try edges.wait("the edge to register") { edges.log("edge").contains("e: registered") }
        #expect(edges.log("edge").contains("e: pinned the server's model-signing key in \(state)/server-signing.pub"))

        edges.kill9("a")
        // The same TLS certificate (the edge trusts a's CA), a new model-signing key.
        try FileManager.default.createDirectory(atPath: edges.folder + "/b", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: edges.folder + "/a/tls", toPath: edges.folder + "/b/tls")
        try edges.startServer("b", dataDirectory: edges.folder + "/b", arguments + ["--listen", server])
        try edges.wait("the edge to refuse the new server") { edges.log("edge").contains("this edge refuses the server") }
        let log = edges.log("edge")
        #expect(log.contains("remove \(state)/server-signing.pub (the next attempt pins the new key)"), "\(log)")
        #expect(log.contains("--server-key SERVER_DATA_DIR/server-signing.pub"), "\(log)")
        #expect(log.contains("; retrying in "), "\(log)")
        #expect(!log.contains("the server refused this edge"), "\(log)")
        #expect(edges.isRunning("edge"))

        try FileManager.default.removeItem(atPath: state + "/server-signing.pub")
        try edges.wait("the edge to register with the new server") { edges.count("edge", "e: registered") == 2 }
        let newKey = try String(contentsOfFile: edges.folder + "/b/server-signing.pub", encoding: .utf8)
        #expect(try String(contentsOfFile: state + "/server-signing.pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            == newKey.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
