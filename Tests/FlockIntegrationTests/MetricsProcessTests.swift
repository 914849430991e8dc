import FlockCore
import FlockTestSupport
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// `serve --metrics`: a real server and real edges, the metrics scraped over HTTP and checked against what the
/// rounds did (as `admin rounds` reports them), the refusals of deliberately bad calls, and no edge id anywhere.
@Suite(.serialized) struct MetricsProcessTests {
    /// `GET url`: the status and the body.
    static func get(_ url: String) async throws -> (status: Int, body: String, type: String) {
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 30
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as? HTTPURLResponse
        return (http?.statusCode ?? 0, String(decoding: data, as: UTF8.self), http?.value(forHTTPHeaderField: "Content-Type") ?? "")
    }

    /// The address serve wrote to DATA_DIR/metrics.address, once it is there.
    static func metricsAddress(_ fleet: Fleet) throws -> String {
        var address = ""
        try fleet.wait("the metrics address", seconds: 30) {
            address = (try? String(contentsOfFile: fleet.dataDirectory + "/metrics.address", encoding: .utf8)) ?? ""
            return address.hasSuffix("\n")
        }
        return address.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func theScrapeCountsWhatTheRoundsDidAndNamesNoEdge() async throws {
        let fleet = Fleet()
        let parts = try fleet.partition(3, scheme: "iid")
        let server = try fleet.startServer([
            "--rounds", "2", "--min-clients", "3", "--heartbeat", "0.5", "--metrics", "127.0.0.1:0",
            "--holdout", TestData.path("mnist5k-test.csv"),
        ])
        let metrics = try Self.metricsAddress(fleet)
        #expect(fleet.log("server").contains("metrics on http://\(metrics)/metrics"))
        // Ids no label could carry by accident.
        let ids = ["edge-qz7-\(UInt32.random(in: 1000...9999))", "edge-kx4-\(UInt32.random(in: 1000...9999))", "edge-wv2-\(UInt32.random(in: 1000...9999))"]
        for (id, part) in zip(ids, parts) { try fleet.startEdge(id, server: server, data: part) }
        try fleet.wait("2 rounds") { try fleet.status()["completed_rounds"] as? Int == 2 }

        // Deliberately bad calls: an admin call with a wrong token, twice.
        for _ in 0..<2 {
            let refused = try fleet.admin(["status", "--token", "not-the-token"])
            #expect(refused.status != 0)
        }

        let scrape = try await Self.get("http://\(metrics)/metrics")
        #expect(scrape.status == 200 && scrape.type.hasPrefix("text/plain"), "\(scrape.status) \(scrape.type)")
        let text = PrometheusText(scrape.body)
        let rounds = try fleet.rounds()
        let completed = rounds.filter { $0["state"] as? String == "completed" }.count
        #expect(completed == 2)
        #expect(text.sum("flock_rounds_completed_total") == Double(completed))
        #expect(text.sum("flock_rounds_failed_total") == Double(rounds.count - completed))
        #expect(text.sum("flock_round_seconds_count") == Double(rounds.count))
        let selected = rounds.reduce(0) { $0 + ($1["selected"] as? Int ?? 0) }
        let participants = rounds.reduce(0) { $0 + ($1["participants"] as? Int ?? 0) }
        #expect(text.value("flock_round_edges_total", ["outcome": "selected"]) == Double(selected))
        #expect(text.value("flock_round_edges_total", ["outcome": "reported"]) == Double(participants))
        // Secure aggregation (the default): every phase of both rounds waited for the three edges.
        for phase in ["advertise", "share", "mask", "unmask"] {
            #expect(text.value("flock_secure_phase_edges_total", ["phase": phase, "outcome": "selected"]) == 6, "\(phase)")
            #expect(text.value("flock_secure_phase_seconds_count", ["phase": phase]) == 2, "\(phase)")
        }
        // Bytes: what the rounds recorded as uploads (masked updates, keys, shares, reveals; at least the six masked
        // updates of the 199,210-parameter model) came in over those calls; the rounds' model downloads went out.
        let uploaded = rounds.reduce(0) { $0 + ($1["upload_bytes"] as? Int ?? 0) }
        let downloaded = rounds.reduce(0) { $0 + ($1["download_bytes"] as? Int ?? 0) }
        let received = ["SubmitUpdate", "AdvertiseKeys", "ShareKeys", "RevealShares"].reduce(0.0) {
            $0 + (text.value("flock_received_bytes_total", ["rpc": $1]) ?? 0)
        }
        #expect(uploaded >= 6 * 199_210 * 4 && received >= Double(uploaded), "\(received) received, \(uploaded) recorded")
        #expect(downloaded > 0 && text.value("flock_sent_bytes_total", ["rpc": "FetchModel"]) ?? 0 >= Double(downloaded))
        #expect(text.sum("flock_received_bytes_total") > received && text.sum("flock_sent_bytes_total") > 0)
        #expect(text.value("flock_rpc_calls_total", ["rpc": "Register"]) ?? 0 >= 3)
        #expect(text.value("flock_refusals_total", ["rpc": "Status", "reason": "unauthenticated"]) == 2)
        #expect(text.value("flock_connected_edges") == 3)
        #expect(text.value("flock_open_connections") ?? 0 >= 3)
        #expect(text.value("flock_registry_promotions_total", ["by": "policy"]) == 1)
        // TLS (the default): the seconds left on the certificate served, as openssl reads its file.
        let left = try #require(text.value("flock_certificate_expiry_seconds"))
        let certificate = fleet.dataDirectory + "/tls/server.pem"
        let check = { (seconds: Double) in
            try TestData.run("/usr/bin/openssl", ["x509", "-in", certificate, "-noout", "-checkend", String(Int(seconds))]).status
        }
        let notWithin = try check(left - 300)
        let within = try check(left + 300)
        #expect(left > 86_400 && notWithin == 0 && within != 0, "\(left)")
        // No edge id, anywhere.
        for id in ids { #expect(!scrape.body.contains(id)) }
        #expect(!scrape.body.contains("edge-"))

        // Nothing but /metrics is served.
        for path in ["/", "/metrics/x", "/debug", "/admin.token"] {
            #expect(try await Self.get("http://\(metrics)\(path)").status == 404, "\(path)")
        }

        #expect(try fleet.admin(["stop"]).status == 0)
        fleet.processes["server"]?.waitUntilExit()
        #expect(!FileManager.default.fileExists(atPath: fleet.dataDirectory + "/metrics.address"))
    }

    @Test func withoutMetricsNoPortIsOpenedAndABusyPortStopsServeWithAMessage() throws {
        let fleet = Fleet()
        try fleet.startServer(["--wait-for-start"])
        #expect(!FileManager.default.fileExists(atPath: fleet.dataDirectory + "/metrics.address"))
        #expect(!fleet.log("server").contains("metrics on"))
        #expect(try fleet.admin(["stop"]).status == 0)
        fleet.processes["server"]?.waitUntilExit()

        // The gRPC port of a running server is taken: asking for it as the metrics port fails at start, with advice.
        let first = Fleet()
        let taken = try first.startServer(["--wait-for-start"])
        let second = Fleet()
        let result = try TestData.run(TestData.executable("flock-server"), [
            "serve", "--data-dir", second.dataDirectory, "--listen", "127.0.0.1:0", "--metrics", taken, "--wait-for-start",
        ], seconds: 60)
        #expect(result.status == 1 && result.error.contains("metrics: cannot listen on \(taken)"), "\(result.status) \(result.error)")
    }
}
