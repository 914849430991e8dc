import FlockCore
import FlockServer
import FlockTestSupport
import FlockWire
import Foundation
import GRPCCore
import Testing

/// The metrics' mappings (refusals, failed rounds, secure phases) and the values a coordinator's rounds give, read
/// from the Prometheus text each server's own registry renders.
@Suite struct ServerMetricsTests {
    static let kinds: [ServeRefusal.Kind] = [
        .invalidArgument, .unauthenticated, .failedPrecondition, .alreadyExists, .notFound, .unavailable, .resourceExhausted,
        .permissionDenied,
    ]

    @Test func everyRefusalKindHasALabelOfItsOwnAndTheStatusItIsSentAsCountsUnderIt() {
        // Each kind and the gRPC status the edge and admin handlers send it as (what the interceptor sees).
        let sentAs: [(ServeRefusal.Kind, RPCError.Code)] = [
            (.invalidArgument, .invalidArgument), (.unauthenticated, .unauthenticated), (.failedPrecondition, .failedPrecondition),
            (.alreadyExists, .alreadyExists), (.notFound, .notFound), (.unavailable, .unavailable),
            (.resourceExhausted, .resourceExhausted), (.permissionDenied, .permissionDenied),
        ]
        #expect(sentAs.count == Self.kinds.count)
        var labels = Set<String>()
        for (kind, code) in sentAs {
            let reason = ServerMetrics.RefusalReason(kind)
            #expect(reason != .other)
            #expect(ServerMetrics.RefusalReason(code) == reason, "\(kind) is sent as \(code)")
            labels.insert(reason.rawValue)
        }
        #expect(labels.count == Self.kinds.count)
        // A caller that gave up was not refused.
        #expect(ServerMetrics.RefusalReason(RPCError.Code.cancelled) == nil && ServerMetrics.RefusalReason(RPCError.Code.deadlineExceeded) == nil)
        #expect(ServerMetrics.RefusalReason(RPCError.Code.internalError) == .other)
    }

    @Test func aFailedRoundsReasonIsOneOfAFewLabels() {
        // The words the round state machine itself gives a round whose deadline passed with too few updates.
        var machine = RoundStateMachine(configuration: .init(target: 3, minimumUpdates: 2, timeout: 10))
        _ = try? machine.receive(.open(round: 1, selected: ["a", "b", "c"], now: 0))
        guard case .abandon(_, let reason)? = try? machine.receive(.tick(now: 11)) else {
            Issue.record("the round was not abandoned at its deadline")
            return
        }
        #expect(ServerMetrics.FailureReason(recorded: reason) == .tooFewUpdates, "\(reason)")
        #expect(ServerMetrics.FailureReason(recorded: "stopped by admin") == .stopped)
        #expect(ServerMetrics.FailureReason(recorded: "secure aggregation: 2 survivors, threshold 3") == .secureAggregation)
        #expect(ServerMetrics.FailureReason(recorded: "feature statistics: overflow") == .statistics)
        #expect(ServerMetrics.FailureReason(recorded: "the decoded sum is not finite") == .notFinite)
        #expect(ServerMetrics.FailureReason(recorded: "something new") == .other && ServerMetrics.FailureReason(recorded: nil) == .other)
        #expect(Set(ServerMetrics.FailureReason.allCases.map(\.rawValue)).count == ServerMetrics.FailureReason.allCases.count)
    }

    static func secureRecord(state: String, selected: Int, dropped: [Int], seconds: [Double]) -> RoundRecord {
        var record = RoundRecord.opened(round: 4, selected: selected, modelVersion: 3)
        record.state = state
        record.secureDroppedPerPhase = dropped
        record.securePhaseSeconds = seconds
        return record
    }

    @Test func eachSecurePhaseWaitsForTheEdgesThePhasesBeforeItKept() {
        let completed = ServerMetrics.secureCohorts(of: Self.secureRecord(state: "completed", selected: 10, dropped: [1, 2, 0, 1], seconds: [0.5, 0.7, 3, 0.2]))
        #expect(completed.map(\.0) == ServerMetrics.SecurePhase.allCases)
        #expect(completed.map(\.1) == [
            .init(selected: 10, dropped: 1, seconds: 0.5), .init(selected: 9, dropped: 2, seconds: 0.7),
            .init(selected: 7, dropped: 0, seconds: 3), .init(selected: 7, dropped: 1, seconds: 0.2),
        ])
        // Failed in the share phase: the phases after it never ran and are not counted.
        let failed = ServerMetrics.secureCohorts(of: Self.secureRecord(state: "failed", selected: 5, dropped: [1, 3, 0, 0], seconds: [0.4, 0, 0, 0]))
        #expect(failed.map(\.0) == [.advertise, .share])
        #expect(failed.map(\.1) == [.init(selected: 5, dropped: 1, seconds: 0.4), .init(selected: 4, dropped: 3, seconds: 0)])
        // A plain round has no secure phases.
        #expect(ServerMetrics.secureCohorts(of: .opened(round: 1, selected: 3, modelVersion: 0)).isEmpty)
    }

    @Test func twoServersInOneProcessCountApartAndEverySeriesIsThereFromTheStart() {
        let one = ServerMetrics()
        let two = ServerMetrics()
        var record = Self.secureRecord(state: "completed", selected: 3, dropped: [0, 0, 1, 0], seconds: [0.2, 0.3, 4, 0.1])
        record.participants = 2
        record.dropped = 1
        record.seconds = 42
        one.recordClosed(record)
        one.recordRefusal("Heartbeat", .unauthenticated)
        one.recordReceived("SubmitUpdate", bytes: 1_000)
        one.setCertificateExpiry(Date().addingTimeInterval(86_400))

        let first = PrometheusText(one.exposition())
        #expect(first.value(ServerMetrics.Name.roundsCompleted, ["kind": "training"]) == 1)
        #expect(first.value(ServerMetrics.Name.roundSeconds + "_count", ["outcome": "completed"]) == 1)
        #expect(first.value(ServerMetrics.Name.roundSeconds + "_bucket", ["outcome": "completed", "le": "30.0"]) == 0)
        #expect(first.value(ServerMetrics.Name.roundSeconds + "_bucket", ["outcome": "completed", "le": "60.0"]) == 1)
        #expect(first.value(ServerMetrics.Name.roundEdges, ["outcome": "dropped"]) == 1)
        #expect(first.value(ServerMetrics.Name.securePhaseEdges, ["phase": "mask", "outcome": "dropped"]) == 1)
        #expect(first.value(ServerMetrics.Name.securePhaseEdges, ["phase": "unmask", "outcome": "selected"]) == 2)
        #expect(first.value(ServerMetrics.Name.refusals, ["rpc": "Heartbeat", "reason": "unauthenticated"]) == 1)
        #expect(first.value(ServerMetrics.Name.receivedBytes, ["rpc": "SubmitUpdate"]) == 1_000)
        let expiry = first.value(ServerMetrics.Name.certificateExpiry) ?? 0
        #expect(expiry > 86_000 && expiry <= 86_400)

        // The other server's registry saw none of it, yet plots every series at zero.
        let second = PrometheusText(two.exposition())
        #expect(second.value(ServerMetrics.Name.roundsCompleted, ["kind": "training"]) == 0)
        for reason in ServerMetrics.FailureReason.allCases {
            #expect(second.value(ServerMetrics.Name.roundsFailed, ["reason": reason.rawValue]) == 0)
        }
        #expect(second.value(ServerMetrics.Name.roundSeconds + "_count", ["outcome": "failed"]) == 0)
        #expect(second.value(ServerMetrics.Name.connectedEdges) == 0)
        #expect(second.value(ServerMetrics.Name.certificateExpiry) == nil)
        #expect(second.samples(ServerMetrics.Name.refusals).isEmpty)
    }

    @Test func aCoordinatorsRoundsAreCountedOnceFromTheServersStart() async throws {
        let time = ManualTime()
        var configuration = CoordinatorTests.configuration(folder: TestData.temporaryFolder())
        configuration.roundTimeout = 10
        configuration.edgeTimeout = 1_000
        let coordinator = try Coordinator(configuration: configuration, clock: time.clock)
        let metrics = ServerMetrics()
        await metrics.begin(with: coordinator)
        let sessions = try await CoordinatorTests.registerIdle(coordinator, [("edge-a", 30), ("edge-b", 10)])
        let n = await coordinator.parameterCount
        for id in ["edge-a", "edge-b"] {
            try await coordinator.submit(id: id, session: sessions[id]!, round: 1, examples: 10, delta: [Float](repeating: 0.01, count: n), bytes: 0)
        }
        // Round 2: one update, then the deadline passes.
        for id in ["edge-a", "edge-b"] { _ = try await coordinator.heartbeat(id: id, session: sessions[id]!, status: .idle, round: 0) }
        try await coordinator.submit(id: "edge-a", session: sessions["edge-a"]!, round: 2, examples: 10, delta: [Float](repeating: 0.01, count: n), bytes: 0)
        time.advance(11)
        await coordinator.tick()
        await metrics.collect(from: coordinator)
        // A second scrape counts nothing twice.
        await metrics.collect(from: coordinator)

        let text = PrometheusText(metrics.exposition())
        let rounds = await coordinator.rounds().filter { $0.state != "running" }
        #expect(rounds.map(\.state) == ["completed", "failed"])
        #expect(text.value(ServerMetrics.Name.roundsCompleted, ["kind": "training"]) == 1)
        #expect(text.value(ServerMetrics.Name.roundsFailed, ["reason": "too_few_updates"]) == 1)
        #expect(text.value(ServerMetrics.Name.roundSeconds + "_count", ["outcome": "failed"]) == 1)
        #expect(text.value(ServerMetrics.Name.roundSeconds + "_sum", ["outcome": "failed"]) == 11)
        #expect(text.value(ServerMetrics.Name.roundEdges, ["outcome": "selected"]) == 4)
        #expect(text.value(ServerMetrics.Name.roundEdges, ["outcome": "reported"]) == 2)
        #expect(text.value(ServerMetrics.Name.connectedEdges) == 2)
        // The first version went to production by the policy.
        #expect(text.value(ServerMetrics.Name.promotions, ["by": "policy"]) == 1)

        // A server started on the same data counts only what happens after it starts.
        let restarted = try Coordinator(configuration: configuration, clock: time.clock)
        let fresh = ServerMetrics()
        await fresh.begin(with: restarted)
        await fresh.collect(from: restarted)
        let after = PrometheusText(fresh.exposition())
        #expect(after.value(ServerMetrics.Name.roundsCompleted, ["kind": "training"]) == 0)
        #expect(after.value(ServerMetrics.Name.promotions, ["by": "policy"]) == 0)
    }
}

/// The dashboard and the runbook name every metric, and nothing that is not one.
@Suite struct MetricsDocumentationTests {
    /// The metric names `text` mentions (histogram series names folded into their histogram's).
    static func names(in text: String) -> Set<String> {
        var found = Set<String>()
        var rest = Substring(text)
        while let start = rest.range(of: "flock_") {
            let tail = rest[start.lowerBound...]
            let name = String(tail.prefix { $0.isLetter && $0.isLowercase || $0 == "_" || $0.isNumber })
            rest = tail.dropFirst(name.count)
            var folded = name
            for suffix in ["_bucket", "_count", "_sum"] where folded.hasSuffix(suffix) && !ServerMetrics.Name.all.contains(folded) {
                folded = String(folded.dropLast(suffix.count))
            }
            found.insert(folded)
        }
        return found
    }

    @Test func theGrafanaDashboardChartsEveryMetricAndOnlyThem() throws {
        let text = try String(contentsOfFile: TestData.root + "/server/grafana-dashboard.json", encoding: .utf8)
        let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect((json?["panels"] as? [Any])?.isEmpty == false)
        #expect(Self.names(in: text) == Set(ServerMetrics.Name.all))
    }

    @Test func theRunbookDescribesEveryMetric() throws {
        let text = try String(contentsOfFile: TestData.root + "/server/README.md", encoding: .utf8)
        let section = try #require(text.components(separatedBy: "## Metrics").dropFirst().first)
        let described = Self.names(in: section.components(separatedBy: "\n## ").first ?? "")
        #expect(described == Set(ServerMetrics.Name.all), "missing: \(Set(ServerMetrics.Name.all).subtracting(described)), unknown: \(described.subtracting(ServerMetrics.Name.all))")
        #expect(text.contains("grafana-dashboard.json"))
    }
}
