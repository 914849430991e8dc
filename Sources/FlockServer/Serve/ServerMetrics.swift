import FlockCore
import FlockRegistry
import Foundation
import GRPCCore
import Metrics
import Prometheus
import Synchronization

/// The server's metrics, all in one place: their names, labels and buckets, and how each is read from the
/// coordinator, the registry and the calls. `serve --metrics HOST:PORT` exposes them in the Prometheus text format
/// at `/metrics` (``MetricsEndpoint``); `server/README.md` describes each one and `server/grafana-dashboard.json`
/// charts them.
///
/// They are made through swift-metrics from a factory: `serve` bootstraps the process-wide `MetricsSystem` once
/// (``bootstrap()``), so that every library that emits through swift-metrics lands in the same scrape; a server
/// run in a test process gets a registry of its own (``init()``), so that many servers in one process neither
/// clash nor share values.
///
/// No label carries an edge id, an address, a token or any other value a caller chooses: every label value is
/// one of a small fixed set (the RPC names of the services, the refusal and failure reasons below).
///
/// Counters count from the server's start: rounds already in the history when it starts (after a restart) and
/// registry changes made before it are not counted again.
public final class ServerMetrics: Sendable {
    /// The metric names.
    public enum Name {
        /// Counter, `kind` = `training` | `statistics`: rounds that completed.
        public static let roundsCompleted = "flock_rounds_completed_total"
        /// Counter, `reason` = a ``FailureReason``: rounds that failed (and were retried with a new selection).
        public static let roundsFailed = "flock_rounds_failed_total"
        /// Histogram (seconds, 0.1 s to 10 min), `outcome` = `completed` | `failed`: plan to aggregate or failure.
        public static let roundSeconds = "flock_round_seconds"
        /// Counter, `outcome` = `selected` | `reported` | `dropped`: edges of closed rounds (reported: their
        /// update was aggregated).
        public static let roundEdges = "flock_round_edges_total"
        /// Histogram (seconds), `phase` = a ``SecurePhase``: how long each secure-aggregation phase took.
        public static let securePhaseSeconds = "flock_secure_phase_seconds"
        /// Counter, `phase` = a ``SecurePhase``, `outcome` = `selected` | `reported` | `dropped`: the edges a
        /// secure-aggregation phase waited for, those that answered, those lost in it.
        public static let securePhaseEdges = "flock_secure_phase_edges_total"
        /// Counter, `rpc`: gRPC message bytes received (protobuf encoding and the 5-byte length prefix).
        public static let receivedBytes = "flock_received_bytes_total"
        /// Counter, `rpc`: gRPC message bytes sent.
        public static let sentBytes = "flock_sent_bytes_total"
        /// Counter, `rpc`: calls received (refused ones included).
        public static let calls = "flock_rpc_calls_total"
        /// Counter, `rpc`, `reason` = a ``RefusalReason``: calls refused (a refused call changes nothing).
        public static let refusals = "flock_refusals_total"
        /// Gauge: edges in contact within the edge timeout.
        public static let connectedEdges = "flock_connected_edges"
        /// Gauge, `kind` = `heartbeat` | `secure_aggregation`: long polls the server holds open now.
        public static let parkedLongPolls = "flock_parked_long_polls"
        /// Gauge: TCP connections open on the gRPC port.
        public static let openConnections = "flock_open_connections"
        /// Counter, `by` = `policy` | `operator`: production moved forward to a version.
        public static let promotions = "flock_registry_promotions_total"
        /// Counter, `by` = `policy` | `operator`: production moved back.
        public static let rollbacks = "flock_registry_rollbacks_total"
        /// Gauge: seconds until the server's TLS certificate expires (negative once it has); absent without TLS.
        public static let certificateExpiry = "flock_certificate_expiry_seconds"

        /// Every name above.
        public static let all = [
            roundsCompleted, roundsFailed, roundSeconds, roundEdges, securePhaseSeconds, securePhaseEdges, receivedBytes, sentBytes,
            calls, refusals, connectedEdges, parkedLongPolls, openConnections, promotions, rollbacks, certificateExpiry,
        ]
    }

    /// Why a round failed, as the `reason` label of ``Name/roundsFailed``.
    public enum FailureReason: String, Sendable, CaseIterable {
        /// Fewer updates than `min_clients` arrived by the round's deadline.
        case tooFewUpdates = "too_few_updates"
        /// Secure aggregation could not go on (fewer survivors than the threshold, a protocol error).
        case secureAggregation = "secure_aggregation"
        /// A statistics round's totals could not be decoded.
        case statistics
        /// The aggregate was not finite.
        case notFinite = "not_finite"
        /// `admin stop` ended the open round.
        case stopped
        /// Anything else (the round's `reason` in `admin rounds` says what).
        case other

        /// The reason of a failed round's record (`admin rounds` shows the words).
        public init(recorded reason: String?) {
            let reason = reason ?? ""
            if reason == "stopped by admin" {
                self = .stopped
            } else if reason.hasPrefix("secure aggregation:") {
                self = .secureAggregation
            } else if reason.hasPrefix("feature statistics:") {
                self = .statistics
            } else if reason.contains("not finite") {
                self = .notFinite
            } else if reason.hasSuffix("updates arrived") {
                self = .tooFewUpdates
            } else {
                self = .other
            }
        }
    }

    /// Why a call was refused, as the `reason` label of ``Name/refusals``: one per ``ServeRefusal/Kind`` (the gRPC
    /// status it is sent as), and `other` for statuses no refusal uses.
    public enum RefusalReason: String, Sendable, CaseIterable {
        case invalidArgument = "invalid_argument"
        case unauthenticated
        case permissionDenied = "permission_denied"
        case failedPrecondition = "failed_precondition"
        case alreadyExists = "already_exists"
        case notFound = "not_found"
        case unavailable
        case resourceExhausted = "resource_exhausted"
        case other

        /// The reason of a refusal the server decided on.
        public init(_ kind: ServeRefusal.Kind) {
            switch kind {
            case .invalidArgument: self = .invalidArgument
            case .unauthenticated: self = .unauthenticated
            case .permissionDenied: self = .permissionDenied
            case .failedPrecondition: self = .failedPrecondition
            case .alreadyExists: self = .alreadyExists
            case .notFound: self = .notFound
            case .unavailable: self = .unavailable
            case .resourceExhausted: self = .resourceExhausted
            }
        }

        /// The reason of a call that ended with `code`; nil for a call the caller gave up (cancelled, past its
        /// deadline), which is no refusal.
        public init?(_ code: RPCError.Code) {
            switch code {
            case .cancelled, .deadlineExceeded: return nil
            case .invalidArgument, .outOfRange: self = .invalidArgument
            case .unauthenticated: self = .unauthenticated
            case .permissionDenied: self = .permissionDenied
            case .failedPrecondition, .aborted: self = .failedPrecondition
            case .alreadyExists: self = .alreadyExists
            case .notFound: self = .notFound
            case .unavailable: self = .unavailable
            case .resourceExhausted: self = .resourceExhausted
            default: self = .other
            }
        }
    }

    /// The phases of a secure-aggregation round, as the `phase` label.
    public enum SecurePhase: String, Sendable, CaseIterable {
        /// Edges advertise their public keys.
        case advertise
        /// Edges send their sealed key shares.
        case share
        /// Edges send their masked inputs.
        case mask
        /// Survivors reveal the shares that unmask the sum.
        case unmask
    }

    /// Buckets of the seconds histograms: 0.1 s to 10 minutes.
    public static let secondsBuckets: [Double] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

    /// The collector registry `/metrics` renders.
    let registry: PrometheusCollectorRegistry
    private let factory: any MetricsFactory

    private let roundEdges: [String: Metrics.Counter]
    private let certificateExpiry: Mutex<Date?> = Mutex(nil)
    /// Counters and timers with a label value known only when first used (an RPC name, a reason), made once.
    private let made: Mutex<Made> = Mutex(Made())
    private struct Made {
        var counters: [String: Metrics.Counter] = [:]
        var timers: [String: Metrics.Timer] = [:]
    }
    /// The last round and registry event already counted.
    private let cursor: Mutex<(round: Int, event: Int64)> = Mutex((0, 0))

    /// Metrics in a registry of their own, made through a factory of their own: nothing process-wide is touched,
    /// so a test may run many servers in one process and read each one's values.
    public convenience init() {
        let registry = PrometheusCollectorRegistry()
        self.init(registry: registry, factory: Self.factory(for: registry))
    }

    /// Metrics made through `factory` into `registry` (what `factory` renders into).
    init(registry: PrometheusCollectorRegistry, factory: any MetricsFactory) {
        self.registry = registry
        self.factory = factory
        roundEdges = Dictionary(uniqueKeysWithValues: ["selected", "reported", "dropped"].map {
            ($0, Metrics.Counter(label: Name.roundEdges, dimensions: [("outcome", $0)], factory: factory))
        })
        // Every series a dashboard plots from the first scrape on, at zero until something happens.
        for kind in ["training", "statistics"] { counter(Name.roundsCompleted, [("kind", kind)]).increment(by: 0) }
        for reason in FailureReason.allCases { counter(Name.roundsFailed, [("reason", reason.rawValue)]).increment(by: 0) }
        for by in ["policy", "operator"] {
            counter(Name.promotions, [("by", by)]).increment(by: 0)
            counter(Name.rollbacks, [("by", by)]).increment(by: 0)
        }
        for outcome in ["completed", "failed"] { _ = timer(Name.roundSeconds, [("outcome", outcome)]) }
        for phase in SecurePhase.allCases { _ = timer(Name.securePhaseSeconds, [("phase", phase.rawValue)]) }
        setGauges(connectedEdges: 0, parkedHeartbeats: 0, parkedSecureAggregation: 0, openConnections: 0)
    }

    /// The process's metrics: bootstraps swift-metrics' `MetricsSystem` with a Prometheus factory (at most once per
    /// process: `serve` calls it) and makes the server's metrics through it.
    public static func bootstrap() -> ServerMetrics {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(factory(for: registry))
        return ServerMetrics(registry: registry, factory: MetricsSystem.factory)
    }

    /// A Prometheus factory over `registry` with the server's histogram buckets.
    static func factory(for registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        let buckets = secondsBuckets.map { Duration.milliseconds(Int64(($0 * 1000).rounded())) }
        factory.durationHistogramBuckets[Name.roundSeconds] = buckets
        factory.durationHistogramBuckets[Name.securePhaseSeconds] = buckets
        return factory
    }

    /// Everything, in the Prometheus text exposition format (version 0.0.4).
    public func exposition() -> [UInt8] {
        if let expires = certificateExpiry.withLock({ $0 }) {
            Metrics.Gauge(label: Name.certificateExpiry, factory: factory).record(expires.timeIntervalSinceNow)
        }
        var buffer = [UInt8]()
        registry.emit(into: &buffer)
        return buffer
    }

    // MARK: - What is counted

    /// The server's TLS certificate expires at `notAfter` (the gauge shows the seconds left at each scrape).
    public func setCertificateExpiry(_ notAfter: Date) {
        certificateExpiry.withLock { $0 = notAfter }
    }

    /// One call of `rpc` (a method name of the services), with the bytes its messages took.
    public func recordCall(_ rpc: String) { counter(Name.calls, [("rpc", rpc)]).increment() }

    /// `bytes` received in a message of `rpc`.
    public func recordReceived(_ rpc: String, bytes: Int) { counter(Name.receivedBytes, [("rpc", rpc)]).increment(by: bytes) }

    /// `bytes` sent in a message of `rpc`.
    public func recordSent(_ rpc: String, bytes: Int) { counter(Name.sentBytes, [("rpc", rpc)]).increment(by: bytes) }

    /// A call of `rpc` refused for `reason`.
    public func recordRefusal(_ rpc: String, _ reason: RefusalReason) {
        counter(Name.refusals, [("rpc", rpc), ("reason", reason.rawValue)]).increment()
    }

    /// A closed round: its outcome, seconds and cohort, and under secure aggregation each phase's.
    public func recordClosed(_ record: RoundRecord) {
        let completed = record.state == "completed"
        if completed {
            counter(Name.roundsCompleted, [("kind", record.kind ?? "training")]).increment()
        } else {
            counter(Name.roundsFailed, [("reason", FailureReason(recorded: record.reason).rawValue)]).increment()
        }
        timer(Name.roundSeconds, [("outcome", completed ? "completed" : "failed")]).recordSeconds(max(0, record.seconds))
        roundEdges["selected"]?.increment(by: max(0, record.selected))
        roundEdges["reported"]?.increment(by: max(0, record.participants))
        roundEdges["dropped"]?.increment(by: max(0, record.dropped))
        for (phase, cohort) in Self.secureCohorts(of: record) {
            let labels = [("phase", phase.rawValue)]
            timer(Name.securePhaseSeconds, labels).recordSeconds(max(0, cohort.seconds))
            counter(Name.securePhaseEdges, labels + [("outcome", "selected")]).increment(by: cohort.selected)
            counter(Name.securePhaseEdges, labels + [("outcome", "reported")]).increment(by: cohort.selected - cohort.dropped)
            counter(Name.securePhaseEdges, labels + [("outcome", "dropped")]).increment(by: cohort.dropped)
        }
    }

    /// One secure-aggregation phase of a closed round: the edges it waited for, those lost in it, and its seconds.
    public struct PhaseCohort: Sendable, Equatable {
        /// Edges the phase waited for.
        public var selected: Int
        /// Edges lost in it.
        public var dropped: Int
        /// Seconds it took.
        public var seconds: Double

        /// A phase's cohort.
        public init(selected: Int, dropped: Int, seconds: Double) {
            self.selected = selected
            self.dropped = dropped
            self.seconds = seconds
        }
    }

    /// The phases a closed secure round went through: every phase of a completed round; of a failed one, the
    /// phases that ended and the one it failed in (when edges were lost in it). Each phase waits for the edges
    /// that the phases before it kept.
    public static func secureCohorts(of record: RoundRecord) -> [(SecurePhase, PhaseCohort)] {
        guard let dropped = record.secureDroppedPerPhase, let seconds = record.securePhaseSeconds else { return [] }
        var result = [(SecurePhase, PhaseCohort)]()
        var waiting = record.selected
        for (index, phase) in SecurePhase.allCases.enumerated() {
            let lost = index < dropped.count ? max(0, dropped[index]) : 0
            let took = index < seconds.count ? seconds[index] : 0
            guard record.state == "completed" || took > 0 || lost > 0 else { break }
            let lostHere = min(lost, max(0, waiting))
            result.append((phase, PhaseCohort(selected: max(0, waiting), dropped: lostHere, seconds: took)))
            waiting -= lostHere
        }
        return result
    }

    /// The gauges read at a scrape.
    public func setGauges(connectedEdges: Int, parkedHeartbeats: Int, parkedSecureAggregation: Int, openConnections: Int) {
        Metrics.Gauge(label: Name.connectedEdges, factory: factory).record(connectedEdges)
        Metrics.Gauge(label: Name.parkedLongPolls, dimensions: [("kind", "heartbeat")], factory: factory).record(parkedHeartbeats)
        Metrics.Gauge(label: Name.parkedLongPolls, dimensions: [("kind", "secure_aggregation")], factory: factory).record(parkedSecureAggregation)
        Metrics.Gauge(label: Name.openConnections, factory: factory).record(openConnections)
    }

    /// Production moved: a promotion or a rollback, by the policy or by an operator.
    public func recordProductionChange(_ event: RegistryEvent) {
        let by = ["policy", "gate", "server"].contains(event.actor) ? "policy" : "operator"
        switch event.kind {
        case .promoted: counter(Name.promotions, [("by", by)]).increment()
        case .rolledBack: counter(Name.rollbacks, [("by", by)]).increment()
        default: break
        }
    }

    // MARK: - Reading the coordinator

    /// Starts counting from the coordinator's state now: rounds already closed and registry events already
    /// logged are not counted.
    public func begin(with coordinator: Coordinator) async {
        let last = await coordinator.rounds().last(where: { $0.state != "running" })?.round ?? 0
        let event = (try? coordinator.registry.reader.events(alias: Alias.production).compactMap(\.id).max()) ?? 0
        cursor.withLock { $0 = (last, event) }
    }

    /// Counts what happened since the last reading (rounds closed, production moves) and sets the gauges; called
    /// at every scrape. `openConnections` is the gRPC port's count of open connections.
    public func collect(from coordinator: Coordinator, openConnections: Int = 0) async {
        let rounds = await coordinator.rounds()
        let connected = Int(await coordinator.status().connectedEdges)
        let parked = await coordinator.parkedLongPolls
        let events = (try? coordinator.registry.reader.events(alias: Alias.production)) ?? []
        let (closed, moves) = cursor.withLock { cursor -> ([RoundRecord], [RegistryEvent]) in
            let closed = rounds.filter { $0.state != "running" && $0.round > cursor.round }
            let moves = events.filter { ($0.id ?? 0) > cursor.event }
            cursor.round = max(cursor.round, closed.map(\.round).max() ?? 0)
            cursor.event = max(cursor.event, moves.compactMap(\.id).max() ?? 0)
            return (closed, moves)
        }
        closed.forEach(recordClosed)
        moves.forEach(recordProductionChange)
        setGauges(
            connectedEdges: connected, parkedHeartbeats: parked.heartbeats, parkedSecureAggregation: parked.secureAggregation,
            openConnections: openConnections)
    }

    // MARK: - Making metrics

    private func counter(_ name: String, _ labels: [(String, String)]) -> Metrics.Counter {
        let key = Self.key(name, labels)
        return made.withLock { made in
            if let counter = made.counters[key] { return counter }
            let counter = Metrics.Counter(label: name, dimensions: labels, factory: factory)
            made.counters[key] = counter
            return counter
        }
    }

    private func timer(_ name: String, _ labels: [(String, String)]) -> Metrics.Timer {
        let key = Self.key(name, labels)
        return made.withLock { made in
            if let timer = made.timers[key] { return timer }
            let timer = Metrics.Timer(label: name, dimensions: labels, factory: factory)
            made.timers[key] = timer
            return timer
        }
    }

    private static func key(_ name: String, _ labels: [(String, String)]) -> String {
        ([name] + labels.map { $0.0 + "=" + $0.1 }).joined(separator: "\u{1}")
    }
}
