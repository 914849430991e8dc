import FlockCompression
import FlockCore
import FlockCrypto
import FlockLogging
import FlockRegistry
import FlockSecAgg
import FlockWire
import Foundation
import Logging

/// The running server's state, owned by one actor: membership, the open round's state machine and
/// running aggregate, the global model and strategy state, the round history and the admin controls.
///
/// Every edge and admin call goes through here; the gRPC handlers only check message shapes and move
/// bytes. Time is seconds on a ``ServeClock`` (the monotonic clock when serving). After every completed or
/// failed round the whole state is written atomically (``RoundCheckpoint``); in between, every accepted
/// update and evaluation is appended to the open round's ``RoundJournal`` before the edge hears it was
/// accepted. A server killed at any moment restarts with the completed rounds and reopens the open round
/// with the same selection and everything it had accepted; its edges have one edge timeout to register
/// again. A round that cannot finish is abandoned and retried with a fresh selection, as in Bonawitz et
/// al. 2019 ("Towards Federated Learning at Scale", §4).
public actor Coordinator {
    /// Training controls set by the admin.
    public enum Control: String, Sendable {
        /// Rounds open whenever enough edges are eligible.
        case running
        /// No new rounds open; an open round finishes.
        case paused
        /// Started with `--wait-for-start`: no rounds until `admin start`.
        case idle
        /// `admin stop` (the open round was abandoned) or a signal (the open round stays in the journal): the server
        /// is shutting down.
        case stopped
        /// `rounds` rounds have completed.
        case finished
    }

    private struct OpenRound {
        var record: RoundRecord
        var plan: Flock_V1_RoundPlan
        /// What the journal's first record holds for this round.
        var opening: RoundJournal.Opening
        /// Whether the journal file on disk is this round's (its opening was written): only then are inputs
        /// appended, so that a journal never holds inputs of two rounds.
        var journaled = false
        var started: Double
        var deadline: Double
        var average: WeightedAverage
        var startVersion: Int
        var evaluated: Set<String> = []
        var evaluation = (examples: 0, loss: 0.0, correct: 0.0)
        /// Secure aggregation of this round, when on: the server then holds only masked inputs and their sum.
        var secure: ServedSecureRound?
        /// The codec of a plain round's payloads, built once from the plan (nil for a secure or statistics round).
        var codec: PlainCodec?
        /// A plain statistics round's encoding and the running sum of the edges' moments (nil otherwise).
        var moments: (encoding: FeatureMoments, sum: [UInt32], edges: Int)?

        /// Adds one edge's federated evaluation to the example-weighted totals.
        mutating func addEvaluation(edge: String, examples: Int, loss: Double, accuracy: Double) {
            evaluated.insert(edge)
            evaluation.examples += examples
            evaluation.loss += loss * Double(examples)
            evaluation.correct += accuracy * Double(examples)
        }
    }

    private struct Waiter {
        var token: UInt64
        var continuation: CheckedContinuation<Flock_V1_HeartbeatResponse, Never>
    }

    private struct SecAggWaiter {
        var token: UInt64
        var phase: Flock_V1_SecAggPhase
        var continuation: CheckedContinuation<Flock_V1_SecAggStep, Never>
    }

    /// The configuration it runs with.
    public let configuration: ServerConfiguration
    /// The model architecture.
    public let spec: ModelSpec
    /// The scaling the model file carries: the configured one, or the standardization a statistics round fitted.
    private var scaling: FeatureScaling
    /// Whether ``scaling`` is still to be fitted by a statistics round (`scale = standardize` before its first one).
    private var needsStatistics: Bool
    /// The server holdout as read, and scaled as the model file says.
    private let unscaledHoldout: Dataset?
    private var holdout: Dataset?
    private let evaluator: Model
    private let clock: ServeClock
    let logger: Logger

    var global: GlobalModelState
    private var membership: Membership
    private var machine: RoundStateMachine?
    private var open: OpenRound?
    private var selection: SeededGenerator
    private var pace: SeededGenerator
    private var history: [RoundRecord]
    private var control: Control
    /// The global model's file, as `global.flockmdl` holds it.
    var modelFileBytes: [UInt8] = []
    /// What FetchModel streams: the model in the download codec.
    private var modelBytes: [UInt8] = []
    /// SHA-256 (hex) of the model file the edges rebuild from ``modelBytes`` (the plan's model hash).
    private var modelHash = ""
    private var waiters: [String: Waiter] = [:]
    private var secAggWaiters: [String: SecAggWaiter] = [:]
    private var nextWaiterToken: UInt64 = 0
    private var onStop: (@Sendable () -> Void)?
    /// Edges with an update stream in progress: one at a time each.
    private var uploading: Set<String> = []
    /// The last completed or failed round is not in the checkpoint yet (the write failed): no round opens until
    /// it is, and its journal stays on disk meanwhile.
    private var awaitingCheckpoint = false
    /// When the checkpoint was last tried while ``awaitingCheckpoint``, and when silent edges were last pruned.
    private var lastCheckpointAttempt = -Double.infinity
    private var lastPrune = 0.0
    /// Whether the operator was already warned of a loss far above chance (once per server run).
    private var warnedOfLoss = false
    /// A quantizing codec's block ranges for the next secure round, from the last one's aggregated mean
    /// squares (nil: the initial range; in the round checkpoint).
    private var secureRanges: [Float]?
    /// FetchSGD's momentum and error sketches under `sketch` (nil until the first sketched round; in the
    /// round checkpoint).
    private var fetch: FetchSGDState?
    private let journal: RoundJournal
    /// The model registry in the data directory: every completed round's model becomes a version there.
    let registry: Registry
    /// The gate, shadow analyses, promotions and rollbacks.
    let policy: PromotionPolicy
    /// Production and the running analyses, read after every registry change.
    var deploymentPlan: DeploymentPlan
    /// The registry version of the current global model (nil before the first round).
    var globalVersion: Int64?
    /// The server's signature of ``modelHash`` (what edges check before they train on it).
    var servedSignature: [UInt8] = []
    /// Files and signatures of the versions the deployment plan serves or compares, read (and verified) once
    /// rather than at every edge's fetch.
    var deployedFiles: [String: (bytes: [UInt8], signature: [UInt8])] = [:]

    /// Loads the round checkpoint from the data directory (or starts fresh) and prepares the first model.
    /// - Parameters:
    ///   - waitForStart: begin idle until `admin start` instead of running.
    ///   - clock: where deadlines and timeouts read the time (the monotonic clock unless a test steers it).
    ///   - logger: where noteworthy events go (round opened, aggregated, failed), with their round, phase and model
    ///     version as metadata; edge ids only as `edge` metadata (shown at debug level).
    /// - Throws: ``CoreError`` for a bad holdout, a damaged checkpoint, or a checkpoint of another model.
    public init(
        configuration: ServerConfiguration, waitForStart: Bool = false, clock: ServeClock = .monotonic(),
        logger: Logger = Logger(label: "flock.server")
    ) throws(CoreError) {
        try configuration.validate()
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        spec = try ModelSpec.preset(configuration.model, inputFeatures: configuration.inputFeatures, classCount: configuration.classes)
        scaling = configuration.scaling
        if let path = configuration.holdoutPath {
            let data = try Dataset.loadCSV(path: path)
            try data.validate(featureCount: spec.inputFeatures, classCount: configuration.classes)
            unscaledHoldout = data
        } else {
            unscaledHoldout = nil
        }
        needsStatistics = configuration.scale == .standardize
        evaluator = try Model(spec: spec, seed: configuration.seed)
        do {
            try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw CoreError(.io, "\(configuration.dataDirectory): cannot create the data directory (\(error.localizedDescription))")
        }
        membership = Membership(timeout: configuration.edgeTimeout)
        journal = RoundJournal(folder: configuration.dataDirectory)
        do {
            registry = try Registry(dataDirectory: configuration.dataDirectory)
            policy = try PromotionPolicy(registry: registry, settings: configuration.promotion, log: { line in logger.info("\(line)") })
            deploymentPlan = try policy.plan()
        } catch {
            throw CoreError(.io, "\(configuration.dataDirectory)/registry: \(error.message)")
        }
        pace = SeededGenerator(seed: configuration.seed ^ 0xFACE)
        if let saved = try RoundCheckpoint.read(fromFolder: configuration.dataDirectory) {
            guard saved.spec == spec, saved.model.strategy == configuration.strategy else {
                throw CoreError(
                    .modelMismatch,
                    "\(configuration.dataDirectory) holds rounds of another model or strategy (\(saved.model.strategy)); use another --data-dir or the same settings")
            }
            global = saved.model
            selection = SeededGenerator(state: saved.selectionState)
            if let fitted = saved.scaling, configuration.scale == .standardize {
                scaling = fitted
                needsStatistics = false
            }
            // The codec's state carries over when the codec is the one it was saved for.
            if let codec = try? saved.codecState(spec: configuration.roundCodec, length: global.weights.count) {
                let fresh = try? RingCodec(configuration.roundCodec, length: global.weights.count, participants: 1, maximumWeight: 1, ranges: nil, seed: 0)
                if let ranges = codec.ranges, ranges.count == fresh?.ranges?.count { secureRanges = ranges }
                fetch = codec.fetch
            } else {
                logger.warning("the saved codec state does not fit codec \(configuration.roundCodec); it starts over")
            }
            history = try saved.history.map { line throws(CoreError) -> RoundRecord in
                do { return try JSONDecoder().decode(RoundRecord.self, from: Data(line.utf8)) } catch {
                    throw CoreError(.corruptFile, "\(configuration.dataDirectory): unreadable round history")
                }
            }
        } else {
            global = GlobalModelState(strategy: configuration.strategy, weights: evaluator.parameterVector())
            selection = SeededGenerator(seed: configuration.seed ^ 0x5E1E_C7ED)
            history = []
        }
        holdout = Self.scaled(unscaledHoldout, by: scaling)
        control = waitForStart ? .idle : .running
        if configuration.rounds > 0, global.round >= configuration.rounds { control = .finished }
        (modelFileBytes, modelBytes, modelHash) = try Self.encodeModel(
            spec: spec, scaling: scaling, weights: global.weights, version: global.round, download: configuration.downloadCodec)
        servedSignature = Self.signature(of: modelHash, registry: registry)
        globalVersion = Self.registryVersion(modelVersion: global.round, history: history, registry: registry)
        let moment = clock.seconds()
        if let (fresh, reopened, selected) = try Self.reopenJournaledRound(
            journal: journal, expectedRound: (history.last?.round ?? 0) + 1, modelVersion: global.round, modelHash: modelHash,
            spec: spec, parameterCount: global.weights.count, configuration: configuration, now: moment) {
            machine = fresh
            open = reopened
            membership.expect(selected, round: reopened.record.round, now: moment)
            logger.info(
                .init(stringLiteral: "round \(reopened.record.round): reopened after a restart with \(reopened.average.count) accepted updates; "
                    + "its \(selected.count) selected edges have \(configuration.edgeTimeout) s to register again"),
                metadata: Self.about(round: reopened.record.round, version: reopened.record.modelVersion))
        }
    }

    /// Reopens the round the journal holds, when it is the one after the last checkpointed round (else the
    /// journal is stale: its round was checkpointed just before the crash removed it).
    private static func reopenJournaledRound(
        journal: RoundJournal, expectedRound: Int, modelVersion: Int, modelHash: String, spec: ModelSpec, parameterCount: Int,
        configuration: ServerConfiguration, now moment: Double
    ) throws(CoreError) -> (RoundStateMachine, OpenRound, selected: [String])? {
        guard let (opening, entries) = try journal.read() else { return nil }
        guard opening.record.round == expectedRound, opening.record.modelVersion == modelVersion,
              let plan = try? Flock_V1_RoundPlan(serializedBytes: opening.plan), plan.modelHash == modelHash,
              // A secure round cannot resume: its edges' keys and masks were for the server that died, and
              // reusing them would leak. It is opened again from scratch with fresh keys.
              !plan.secureAggregation.enabled else {
            journal.remove()
            return nil
        }
        var fresh = RoundStateMachine(configuration: .init(
            target: opening.target, minimumUpdates: opening.minimumUpdates,
            overSelection: configuration.overSelection, timeout: configuration.roundTimeout))
        do { _ = try fresh.receive(.open(round: opening.record.round, selected: opening.selected, now: moment)) } catch {
            throw CoreError(.corruptFile, "\(journal.path): \(error.message); remove the file to drop the open round")
        }
        var reopened = OpenRound(
            record: opening.record, plan: plan, opening: opening, journaled: true, started: moment,
            deadline: moment + configuration.roundTimeout, average: WeightedAverage(length: parameterCount),
            startVersion: modelVersion, codec: plan.statistics ? nil : try Self.plainCodec(of: plan, parameters: parameterCount))
        // A sketch's updates are sketches: the round sums those.
        if let codec = reopened.codec { reopened.average = WeightedAverage(length: codec.decodedLength) }
        if plan.statistics {
            let moments = try Self.moments(of: spec)
            reopened.moments = (moments, [UInt32](repeating: 0, count: moments.wordCount), 0)
        }
        let misfit = CoreError(.corruptFile, "\(journal.path): an input does not fit the round; remove the file to drop the open round")
        for entry in entries {
            switch entry {
            case .update(let edge, let examples, let bytes, let values):
                guard !plan.statistics, (try? fresh.receive(.update(round: opening.record.round, edge: edge, now: moment))) != nil,
                      (try? reopened.average.add(delta: values, examples: examples)) != nil else { throw misfit }
                reopened.record.uploadBytes += bytes
            case .evaluation(let edge, let examples, let loss, let accuracy):
                reopened.addEvaluation(edge: edge, examples: examples, loss: loss, accuracy: accuracy)
            case .moments(let edge, let bytes, let words):
                guard var moments = reopened.moments, words.count == moments.encoding.wordCount,
                      (try? fresh.receive(.update(round: opening.record.round, edge: edge, now: moment))) != nil else { throw misfit }
                for i in moments.sum.indices { moments.sum[i] &+= words[i] }
                moments.edges += 1
                reopened.moments = moments
                reopened.record.uploadBytes += bytes
            }
        }
        return (fresh, reopened, opening.selected)
    }

    /// Encodes the global model of `version`: its file, and the bytes and hash of what the edges receive in
    /// the `download` codec.
    /// - Throws: ``CoreError/Code/invalidData`` for weights the download codec cannot encode (not finite).
    private static func encodeModel(
        spec: ModelSpec, scaling: FeatureScaling, weights: [Float], version: Int, download: ModelDownload
    ) throws(CoreError) -> (file: [UInt8], payload: [UInt8], hash: String) {
        let file = ModelFile(spec: spec, scaling: scaling, metadata: ["model_version": String(version)], parameters: weights)
        do {
            let prepared = try download.prepare(file)
            return (download == .f32 ? prepared.payload : file.encoded().bytes, prepared.payload, prepared.servedHash)
        } catch {
            throw CoreError(.invalidData, "the global model of version \(version): \(error.message)")
        }
    }

    private var now: Double { clock.seconds() }

    /// Registers a callback run once when `admin stop` asks the server to shut down.
    public func setStopHandler(_ handler: @escaping @Sendable () -> Void) { onStop = handler }

    /// Long polls held open now: idle heartbeats and secure-aggregation polls (for the metrics).
    public var parkedLongPolls: (heartbeats: Int, secureAggregation: Int) { (waiters.count, secAggWaiters.count) }

    // MARK: - Edge calls

    /// Registers (or re-registers) an edge.
    /// - Returns: the new session and the heartbeat interval.
    /// - Throws: ``ServeRefusal`` for a bad id or count.
    public func register(id: String, examples: UInt64) throws(ServeRefusal) -> (session: String, heartbeatSeconds: Double) {
        guard examples <= 1 << 40 else { throw ServeRefusal(.invalidArgument, "example count \(examples) is implausible") }
        // Under enrolment only the device itself can register its id; a second connection of it must not knock
        // the first out of the secure round whose keys it advertised while the first is still heard from.
        if configuration.enrolment == .certificate, let secure = open?.secure, secure.hasAdvertised(id), membership.isConnected(id, now: now) {
            throw ServeRefusal(
                .unavailable,
                "edge \(id) is in round \(open!.record.round) on another connection; register again after the round ends (about \(Int(configuration.roundTimeout)) s at most)")
        }
        let session = SecureRandom.token(byteCount: 16)
        // An edge that registers again while selected (its process restarted, or the server did and reopened
        // the round) stays selected: its next idle heartbeat gets the plan again, unless it already reported
        // or it is in a secure round whose keys it had advertised (see below).
        do {
            // Weighed as at most `max_examples`: one edge's claim cannot outweigh the rest.
            _ = try membership.register(id: id, examples: min(Int(examples), configuration.maximumExamples), session: session, now: now)
        } catch {
            throw ServeRefusal(.invalidArgument, error.message)
        }
        if waiters[id] != nil { resumeWaiter(id, with: retry(0, "registered again")) }
        // Under secure aggregation an edge that restarts after advertising has lost its keys: the round goes
        // on without it (its neighbours' shares unmask it if it got that far).
        if var secure = open?.secure, secure.hasAdvertised(id) {
            secure.forget(id)
            open?.secure = secure
            edgeLost(id)
        }
        maybeOpenRound()
        return (session, configuration.heartbeatSeconds)
    }

    /// A heartbeat: the edge's plan when it is selected, otherwise when to come back. An idle edge with
    /// nothing to do may be held here (a long poll of at most one heartbeat interval) so that it hears of
    /// the next round at once; beyond what the next round can use, edges are steered away with a randomized
    /// retry window (pace steering, Bonawitz et al. 2019, §2.3).
    /// - Throws: ``ServeRefusal/Kind/unauthenticated`` for an unknown or stale session.
    /// - Parameter reason: with ``Flock_V1_EdgeStatus/declined``, why the edge leaves `round` (for the log).
    public func heartbeat(
        id: String, session: String, status: Flock_V1_EdgeStatus, round: UInt64, reason: String = ""
    ) async throws(ServeRefusal) -> Flock_V1_HeartbeatResponse {
        try authenticate(id: id, session: session)
        if status == .declined { return decline(id: id, round: round, reason: reason) }
        if let reply = immediateReply(id: id, status: status) { return reply }
        maybeOpenRound()
        if let plan = planIfSelected(id, status: status) { return plan }
        guard waiters.count < parkingCapacity else { return paceSteeredRetry() }
        // Park: resumed with a plan when a round selects this edge, or after one heartbeat interval.
        nextWaiterToken += 1
        let token = nextWaiterToken
        if let previous = waiters.removeValue(forKey: id) { previous.continuation.resume(returning: retry(0, "superseded")) }
        let wait = configuration.heartbeatSeconds
        return await withCheckedContinuation { continuation in
            waiters[id] = Waiter(token: token, continuation: continuation)
            Task { [weak self] in
                try? await Task.sleep(for: .seconds(wait))
                await self?.expireWaiter(id, token: token)
            }
        }
    }

    /// An edge leaves `round` at once because it cannot take part (its data does not fit the model, …): the round
    /// stops waiting for it, and it is not selected again until it registers anew.
    private func decline(id: String, round: UInt64, reason: String) -> Flock_V1_HeartbeatResponse {
        guard let open, UInt64(open.record.round) == round, membership.edges[id]?.round == open.record.round else {
            return retry(configuration.heartbeatSeconds, "round \(round) is not open for edge \(id); nothing to leave")
        }
        let why = reason.isEmpty ? "no reason given" : reason
        logger.info(
            "round \(round): an edge declined (\(why)); it is not selected again until it registers anew",
            metadata: Self.about(round: Int(clamping: round), edge: id))
        membership.decline(id, reason: why)
        if var secure = open.secure {
            secure.forget(id)
            self.open?.secure = secure
        }
        edgeLost(id)
        closeSettledSecurePhase(now: now)
        return retry(configuration.heartbeatSeconds, "left round \(round); register again once this edge can take part")
    }

    /// Drops a revoked device at once: out of the open round (as if it had left it), its long polls answered, its
    /// session gone. Its next call is refused by the identity check before it reaches the coordinator.
    public func forgetRevoked(_ id: String) {
        guard membership.edges[id] != nil else { return }
        logger.notice("a revoked edge is dropped from the federation", metadata: Self.about(edge: id))
        drop(id, retry: "revoked", abort: "this edge was revoked")
    }

    /// An edge shuts down and says so: its session ends and it leaves membership at once (and the open round, as
    /// if it had gone silent; under secure aggregation its neighbours' shares stand in for it), instead of after
    /// the edge timeout. `admin clients` no longer lists it; it registers anew when it comes back.
    /// - Throws: ``ServeRefusal/Kind/unauthenticated`` for an unknown or stale session (nothing changes).
    public func leave(id: String, session: String, reason: String) throws(ServeRefusal) {
        try authenticate(id: id, session: session)
        let round = drop(id, retry: "left", abort: "this edge left")
        logLeave(id: id, round: round, reason: reason)
    }

    /// Ends `id`'s session and takes it out of the open round and membership, answering its long polls with
    /// `retry` (a heartbeat) and `abort` (a secure-aggregation wait); returns the round it was in.
    @discardableResult
    private func drop(_ id: String, retry reason: String, abort: String) -> Int? {
        let round = membership.edges[id]?.round
        if let round, var secure = open?.secure, open?.record.round == round {
            secure.forget(id)
            open?.secure = secure
        }
        resumeWaiter(id, with: retry(configuration.heartbeatSeconds, reason))
        resumeSecAggWaiter(id, with: Flock_V1_SecAggStep.with { $0.aborted = abort })
        if round != nil { edgeLost(id) }
        membership.leave(id)
        closeSettledSecurePhase(now: now)
        return round
    }

    /// Edges the server holds in long polls while a round runs: enough for the next round, twice over.
    private var parkingCapacity: Int {
        if configuration.longPollCapacity > 0 { return configuration.longPollCapacity }
        let target = configuration.target(connected: membership.connected(now: now).count)
        return max(16, 2 * Int((Double(target) * (1 + configuration.overSelection)).rounded(.up)))
    }

    private func immediateReply(id: String, status: Flock_V1_EdgeStatus) -> Flock_V1_HeartbeatResponse? {
        switch control {
        case .running: break
        // A pause lets the open round finish: its edges still get their plan and keep training.
        case .paused where open != nil && membership.edges[id]?.round == open?.record.round: break
        case .paused: return retry(configuration.heartbeatSeconds, "paused")
        case .idle: return retry(configuration.heartbeatSeconds, "waiting for admin start")
        case .stopped: return retry(configuration.heartbeatSeconds, "stopped")
        case .finished: return retry(configuration.heartbeatSeconds, "finished: \(global.round) rounds completed")
        }
        if status != .idle, membership.edges[id]?.round != nil { return retry(configuration.heartbeatSeconds, "keep training") }
        return planIfSelected(id, status: status)
    }

    /// The open round's plan when `id` is selected in it and has not reported.
    private func planIfSelected(_ id: String, status: Flock_V1_EdgeStatus) -> Flock_V1_HeartbeatResponse? {
        guard let open, case .collecting(let round, let selected, let reported, _)? = machine?.state,
              round == open.record.round, selected.contains(id), !reported.contains(id), status == .idle else { return nil }
        // An edge joins secure aggregation only while keys are advertised, and only once (a restarted edge
        // has lost its keys).
        if let secure = open.secure, secure.phase != .advertising || secure.hasAdvertised(id) { return nil }
        var plan = open.plan
        plan.deadlineSeconds = max(0, open.deadline - now)
        var reply = Flock_V1_HeartbeatResponse()
        reply.plan = plan
        return reply
    }

    private func retry(_ seconds: Double, _ reason: String) -> Flock_V1_HeartbeatResponse {
        var reply = Flock_V1_HeartbeatResponse()
        var retry = Flock_V1_RetryAfter()
        retry.seconds = seconds
        retry.reason = reason
        reply.retry = retry
        return reply
    }

    private func paceSteeredRetry() -> Flock_V1_HeartbeatResponse {
        let moment = now
        let needed = configuration.target(connected: membership.connected(now: moment).count)
        let recent = history.suffix(5).map(\.seconds).sorted()
        let roundSeconds = recent.isEmpty ? configuration.heartbeatSeconds : max(0.05, recent[recent.count / 2])
        let seconds = Membership.retryAfter(
            waiting: membership.eligible(now: moment).count, needed: needed, roundSeconds: roundSeconds,
            maximum: configuration.edgeTimeout / 2, using: &pace)
        return retry(seconds, "not selected; round \(open?.record.round ?? 0) is running")
    }

    private func expireWaiter(_ id: String, token: UInt64) {
        guard let waiter = waiters[id], waiter.token == token else { return }
        membership.touch(id, now: now)
        resumeWaiter(id, with: retry(0, "no round yet"))
    }

    private func resumeWaiter(_ id: String, with reply: Flock_V1_HeartbeatResponse) {
        guard let waiter = waiters.removeValue(forKey: id) else { return }
        waiter.continuation.resume(returning: reply)
    }

    /// The bytes FetchModel streams for `hash` and the server's signature of the model: for a round, the current
    /// global model in the download codec; for a `deployment`, a registry version's model file (verified as it
    /// is read). A lossless download codec serves the global model under the file's own hash, so the two kinds
    /// of fetch must be told apart.
    public func model(hash: String, deployment: Bool = false) -> (bytes: [UInt8], signature: [UInt8])? {
        if hash == modelHash, !deployment { return (modelBytes, servedSignature) }
        if let cached = deployedFiles[hash] { return cached }
        guard let version = try? registry.reader.version(hash: hash), let bytes = try? registry.reader.artifacts.read(hash),
              let signature = Hex.decode(version.signature) else { return nil }
        let planned = [deploymentPlan.production, deploymentPlan.shadow?.version, deploymentPlan.rollback?.version].compactMap { $0?.hash }
        if planned.contains(hash) { deployedFiles[hash] = (bytes, signature) }
        return (bytes, signature)
    }

    /// The payload codec of a plain round's `plan` over `parameters` values.
    /// - Throws: ``CoreError/Code/invalidArgument`` for a codec the plain path cannot decode.
    private static func plainCodec(of plan: Flock_V1_RoundPlan, parameters: Int) throws(CoreError) -> PlainCodec {
        do { return try PlainCodec(CodecSpec(parsing: plan.codec.id), length: parameters, seed: plan.codec.seed) } catch {
            throw CoreError(.invalidArgument, error.message)
        }
    }

    /// Counts bytes of a download of the round's model toward the open round (deployments of registry
    /// versions to serve are not round traffic).
    public func recordDownload(bytes: Int, hash: String) {
        guard hash == modelHash else { return }
        open?.record.downloadBytes += bytes
    }

    /// What an update's payload must be, as ``checkUpload(id:session:round:codec:payloadBytes:)`` found.
    public enum UploadExpectation: Sendable {
        /// A masked ring vector of exactly this many 32-bit words (secure aggregation).
        case masked(words: Int)
        /// One edge's payload of `codec`, of exactly `bytes` (at most `bytes` when not `exact`).
        case plain(codec: PlainCodec, bytes: Int, exact: Bool)
        /// One edge's feature moments in a plain statistics round: exactly this many 32-bit words.
        case moments(words: Int)
    }

    /// Checks an update's header before its payload is received.
    /// - Returns: what the payload must hold: the words of a masked vector in a secure round, or a payload
    ///   of the round's codec.
    /// - Throws: ``ServeRefusal`` for a bad session, codec, size, round or edge.
    public func checkUpload(id: String, session: String, round: UInt64, codec: String, payloadBytes: UInt64) throws(ServeRefusal) -> UploadExpectation {
        try authenticate(id: id, session: session)
        let parameters = global.weights.count
        if let open, let secure = open.secure, UInt64(open.record.round) == round {
            let words = secure.encoding.wordCount(length: parameters)
            guard codec == secure.encoding.identifier else {
                throw ServeRefusal(.invalidArgument, "round \(round) uses secure aggregation: send the masked \(secure.encoding.identifier) vector, not '\(codec)'")
            }
            guard payloadBytes == UInt64(words) * 4 else {
                throw ServeRefusal(.invalidArgument, "masked input of \(payloadBytes) bytes; the round expects \(words) words (\(words * 4) bytes)")
            }
            guard secure.expectsMaskedInput(from: id) else {
                throw ServeRefusal(.failedPrecondition, "round \(round) takes no masked input from \(id) now")
            }
            try beginUpload(id)
            return .masked(words: words)
        }
        var probe = machine ?? RoundStateMachine(configuration: .init(target: 1, minimumUpdates: 1))
        if let open, let moments = open.moments, UInt64(open.record.round) == round {
            guard codec == FeatureMoments.identifier else {
                throw ServeRefusal(.invalidArgument, "round \(round) gathers feature statistics: send the '\(FeatureMoments.identifier)' vector, not '\(codec)'")
            }
            guard payloadBytes == UInt64(moments.encoding.wordCount) * 4 else {
                throw ServeRefusal(.invalidArgument, "moments of \(payloadBytes) bytes; the round expects \(moments.encoding.wordCount * 4)")
            }
            let roundNumber = try Self.roundNumber(round)
            do { _ = try probe.receive(.update(round: roundNumber, edge: id, now: now)) } catch { throw Self.refusal(error) }
            try beginUpload(id)
            return .moments(words: moments.encoding.wordCount)
        }
        guard let open, let plain = open.codec, UInt64(open.record.round) == round else {
            // No plain round open under this id: the round state machine says why.
            let roundNumber = try Self.roundNumber(round)
            do { _ = try probe.receive(.update(round: roundNumber, edge: id, now: now)) } catch { throw Self.refusal(error) }
            throw ServeRefusal(.failedPrecondition, "round \(round) is not open")
        }
        guard codec == open.plan.codec.id else {
            throw ServeRefusal(.invalidArgument, "codec '\(codec)' is not used in this round; the plan asks for \(open.plan.codec.id)")
        }
        let exact = plain.hasFixedPayloadSize
        guard exact ? payloadBytes == UInt64(plain.payloadBytes) : payloadBytes <= UInt64(plain.maximumPayloadBytes) else {
            throw ServeRefusal(.invalidArgument, "update of \(payloadBytes) bytes; a \(codec) update of this model's \(parameters) parameters takes "
                + (exact ? "\(plain.payloadBytes)" : "at most \(plain.maximumPayloadBytes)"))
        }
        let roundNumber = try Self.roundNumber(round)
        do { _ = try probe.receive(.update(round: roundNumber, edge: id, now: now)) } catch {
            throw Self.refusal(error)
        }
        try beginUpload(id)
        return .plain(codec: plain, bytes: exact ? plain.payloadBytes : Int(payloadBytes), exact: exact)
    }

    /// `round` as the round state machine counts it.
    /// - Throws: ``ServeRefusal/Kind/failedPrecondition`` for an id beyond any round's, echoed as it was sent.
    private static func roundNumber(_ round: UInt64) throws(ServeRefusal) -> Int {
        guard let number = Int(exactly: round) else { throw ServeRefusal(.failedPrecondition, "round \(round) is not open") }
        return number
    }

    /// Takes the edge's one upload slot.
    /// - Throws: ``ServeRefusal/Kind/resourceExhausted`` while another update stream of the edge is open.
    private func beginUpload(_ id: String) throws(ServeRefusal) {
        guard uploading.insert(id).inserted else {
            throw ServeRefusal(.resourceExhausted, "edge \(id) is already sending an update; one upload at a time")
        }
    }

    /// Frees the upload slot that ``checkUpload(id:session:round:codec:payloadBytes:)`` took, once the update
    /// stream has ended (accepted or not).
    public func endUpload(id: String) {
        uploading.remove(id)
    }

    /// Accepts one edge's update into the open round.
    /// - Throws: ``ServeRefusal`` (nothing changes) for a bad session, round, edge, count or value.
    public func submit(id: String, session: String, round: UInt64, examples: UInt64, delta: [Float], bytes: Int) throws(ServeRefusal) {
        try authenticate(id: id, session: session)
        guard var open, var probe = machine else { throw ServeRefusal(.failedPrecondition, "round \(round) is not open") }
        guard open.secure == nil else { throw ServeRefusal(.failedPrecondition, "round \(round) uses secure aggregation: send a masked input") }
        guard examples >= 1 else { throw ServeRefusal(.invalidArgument, "example count must be 1 or more") }
        guard delta.count == open.average.length else {
            throw ServeRefusal(.invalidArgument, "update has \(delta.count) values; the round's codec decodes to \(open.average.length)")
        }
        let roundNumber = try Self.roundNumber(round)
        do { _ = try probe.receive(.update(round: roundNumber, edge: id, now: now)) } catch {
            throw Self.refusal(error)
        }
        // Weighed by at most `max_examples`, and no longer than `max_update_norm`: one edge cannot drag the
        // average arbitrarily far.
        let weight = Int(min(examples, UInt64(configuration.maximumExamples)))
        let values = Self.bounded(delta, norm: configuration.maximumUpdateNorm)
        do { try open.average.add(delta: values, examples: weight) } catch {
            throw ServeRefusal(.invalidArgument, error.message)
        }
        try record(.update(edge: id, examples: weight, bytes: bytes, values: values), in: &open)
        open.record.uploadBytes += bytes
        machine = probe
        self.open = open
        if case .aggregate(let r) = probe.pendingAction { aggregate(round: r) }
    }

    /// Accepts one edge's feature moments into the open plain statistics round.
    /// - Throws: ``ServeRefusal`` (nothing changes) for a bad session, round, edge or length.
    public func submitMoments(id: String, session: String, round: UInt64, words: [UInt32], bytes: Int) throws(ServeRefusal) {
        try authenticate(id: id, session: session)
        guard var open, UInt64(open.record.round) == round, var moments = open.moments, var probe = machine else {
            throw ServeRefusal(.failedPrecondition, "round \(round) does not gather feature statistics")
        }
        guard words.count == moments.encoding.wordCount else {
            throw ServeRefusal(.invalidArgument, "moments of \(words.count) words; the round expects \(moments.encoding.wordCount)")
        }
        let roundNumber = try Self.roundNumber(round)
        do { _ = try probe.receive(.update(round: roundNumber, edge: id, now: now)) } catch { throw Self.refusal(error) }
        try record(.moments(edge: id, bytes: bytes, words: words), in: &open)
        for i in moments.sum.indices { moments.sum[i] &+= words[i] }
        moments.edges += 1
        open.moments = moments
        open.record.uploadBytes += bytes
        machine = probe
        self.open = open
        if case .aggregate(let r) = probe.pendingAction { aggregate(round: r) }
    }

    /// Federated evaluation of the open round's starting model on one edge's held-out split.
    /// - Throws: ``ServeRefusal`` for a bad session, round, edge or value, or a second report.
    public func reportEvaluation(id: String, session: String, round: UInt64, examples: UInt64, loss: Double, accuracy: Double) throws(ServeRefusal) {
        try authenticate(id: id, session: session)
        guard var open, UInt64(open.record.round) == round else { throw ServeRefusal(.failedPrecondition, "round \(round) is not open") }
        guard case .collecting(_, let selected, _, _)? = machine?.state, selected.contains(id) else {
            throw ServeRefusal(.failedPrecondition, "edge \(id) was not selected for round \(round)")
        }
        guard !open.evaluated.contains(id) else { throw ServeRefusal(.alreadyExists, "edge \(id) already reported its evaluation for round \(round)") }
        guard examples >= 1, examples <= 1 << 40, loss.isFinite, loss >= 0, accuracy.isFinite, (0...1).contains(accuracy) else {
            throw ServeRefusal(.invalidArgument, "evaluation needs 1 or more examples, a finite loss >= 0 and an accuracy in [0, 1]")
        }
        try record(.evaluation(edge: id, examples: Int(examples), loss: loss, accuracy: accuracy), in: &open)
        open.addEvaluation(edge: id, examples: Int(examples), loss: loss, accuracy: accuracy)
        self.open = open
    }

    /// `delta` scaled down to L2 norm `norm` when it is longer (unchanged when `norm` is 0).
    static func bounded(_ delta: [Float], norm: Double) -> [Float] {
        guard norm > 0 else { return delta }
        let length = delta.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        guard length > norm else { return delta }
        let scale = Float(norm / length)
        return delta.map { $0 * scale }
    }

    /// Appends an accepted input to `open`'s journal, first writing the journal's opening if the file is not
    /// this round's yet; the caller changes state only after this.
    /// - Throws: ``ServeRefusal/Kind/unavailable`` when the input cannot be made durable: nothing is accepted.
    private func record(_ entry: RoundJournal.Entry, in open: inout OpenRound) throws(ServeRefusal) {
        do {
            if !open.journaled {
                try journal.begin(open.opening)
                open.journaled = true
            }
            try journal.append(entry, round: open.record.round)
        } catch {
            logger.error("cannot journal an accepted input: \(error.message)", metadata: Self.about(round: open.record.round))
            throw ServeRefusal(.unavailable, "the server cannot store the input durably right now; try again")
        }
    }

    /// Checks that `session` is the edge's current session (and counts the call as contact).
    /// - Throws: ``ServeRefusal/Kind/unauthenticated`` otherwise.
    public func checkSession(id: String, session: String) throws(ServeRefusal) {
        try authenticate(id: id, session: session)
    }

    private func authenticate(id: String, session: String) throws(ServeRefusal) {
        do { try membership.heartbeat(id: id, session: session, now: now) } catch {
            throw ServeRefusal(.unauthenticated, error.message)
        }
    }

    private static func refusal(_ error: RoundStateMachine.Refusal) -> ServeRefusal {
        switch error.kind {
        case .duplicate: return ServeRefusal(.alreadyExists, error.message)
        case .unknownRound, .roundClosed, .notSelected, .roundAlreadyOpen, .emptySelection:
            return ServeRefusal(.failedPrecondition, error.message)
        }
    }

    // MARK: - Rounds

    /// Advances time: edges that stopped heartbeating leave the open round, deadlines pass, new rounds open.
    public func tick() {
        let moment = now
        // A journal replayed at start-up may already hold every update the round needed.
        if let pending = machine?.pendingAction, case .aggregate = pending { perform(pending) }
        if let open, case .collecting(_, let selected, let reported, _)? = machine?.state {
            for id in selected.subtracting(reported).sorted() where !membership.isConnected(id, now: moment) {
                guard self.open?.record.round == open.record.round else { break }
                edgeLost(id)
            }
        }
        if machine != nil, open != nil, let action = try? machine!.receive(.tick(now: moment)) { perform(action) }
        closeSettledSecurePhase(now: moment)
        // Ids that registered and never came back are forgotten after ten edge timeouts of silence.
        if moment - lastPrune >= configuration.edgeTimeout {
            lastPrune = moment
            let forgotten = membership.prune(silentFor: 10 * configuration.edgeTimeout, now: moment)
            if forgotten > 0 { logger.info("forgot \(forgotten) edges silent for \(10 * configuration.edgeTimeout) s") }
        }
        maybeOpenRound()
    }

    /// Closes the open secure round's key phase at its deadline, or as soon as every edge it still waits for has
    /// gone silent or left.
    private func closeSettledSecurePhase(now moment: Double) {
        guard let secure = open?.secure, let round = open?.record.round, secure.phase != .masking,
              moment >= secure.deadline || secure.awaited.allSatisfy({ !membership.isConnected($0, now: moment) }) else { return }
        switch secure.phase {
        case .advertising: closeSecureAdvertising(round: round)
        case .sharing: closeSecureSharing(round: round)
        case .unmasking: finishSecure(round: round)
        case .masking: break  // ends with the round's own deadline, through the round state machine
        }
    }

    private func edgeLost(_ id: String) {
        guard open != nil, machine != nil, let action = try? machine!.receive(.edgeLost(edge: id, now: now)) else { return }
        perform(action)
    }

    private func perform(_ action: RoundStateMachine.Action) {
        switch action {
        case .aggregate(let round): aggregate(round: round)
        case .abandon(let round, let reason): abandon(round: round, reason: reason)
        case .none, .accept: break
        }
    }

    private func maybeOpenRound() {
        guard open == nil, control == .running else { return }
        // The last round must be in the checkpoint before another opens (its journal holds it until then).
        if awaitingCheckpoint {
            guard now - lastCheckpointAttempt >= 1 else { return }
            lastCheckpointAttempt = now
            guard persist() else { return }
            journal.remove()
            awaitingCheckpoint = false
            logger.notice("the round checkpoint is written again; rounds go on")
        }
        if configuration.rounds > 0, global.round >= configuration.rounds {
            control = .finished
            logger.notice("finished: \(global.round) rounds completed", metadata: Self.about(version: global.round))
            for id in waiters.keys.sorted() { resumeWaiter(id, with: retry(configuration.heartbeatSeconds, "finished")) }
            return
        }
        let moment = now
        let eligible = membership.eligible(now: moment)
        guard eligible.count >= configuration.minimumClients else { return }
        // A statistics round asks every eligible edge: the standardization is fitted from as many rows as there are.
        let target = needsStatistics
            ? eligible.count : min(configuration.target(connected: membership.connected(now: moment).count), eligible.count)
        let roundConfiguration = RoundStateMachine.Configuration(
            target: target, minimumUpdates: min(configuration.minimumClients, target),
            overSelection: configuration.overSelection, timeout: configuration.roundTimeout)
        let roundId = (history.last?.round ?? 0) + 1
        let chosen = membership.select(
            roundConfiguration.selectionSize(available: eligible.count), round: roundId, now: moment,
            preferring: Set(waiters.keys), using: &selection)
        var fresh = RoundStateMachine(configuration: roundConfiguration)
        guard (try? fresh.receive(.open(round: roundId, selected: chosen, now: moment))) != nil else { return }
        machine = fresh

        var plan = Flock_V1_RoundPlan()
        plan.round = UInt64(roundId)
        plan.modelHash = modelHash
        plan.modelBytes = UInt64(modelBytes.count)
        plan.downloadCodec = configuration.downloadCodec.identifier
        var training = configuration.plan
        training.seed = configuration.seed &+ UInt64(roundId) &* 1_000_003
        plan.training = Flock_V1_LocalTraining(training)
        plan.codec.id = configuration.roundCodec.identifier
        plan.codec.seed = training.seed ^ 0xC0DE_C5EE_D
        plan.secureAggregation.enabled = false
        plan.evaluate = configuration.federatedEvaluation
        // Before the first training round of `scale = standardize`: the edges send their feature moments.
        let statistics = needsStatistics
        if statistics {
            plan.statistics = true
            plan.codec.id = FeatureMoments.identifier
            plan.evaluate = false
        }
        var secure: ServedSecureRound?
        if configuration.secureAggregation {
            do {
                secure = try makeSecureRound(round: roundId, participants: chosen, plan: &plan, now: moment)
            } catch {
                logger.error("round \(roundId): cannot set up secure aggregation: \(error.message); no round opens", metadata: Self.about(round: roundId))
                machine = nil
                return
            }
        }
        let record = RoundRecord.opened(
            round: roundId, selected: chosen.count, modelVersion: global.round, kind: statistics ? RoundRecord.statisticsKind : nil)
        let opening: RoundJournal.Opening
        do {
            opening = RoundJournal.Opening(
                record: record, selected: chosen, target: target, minimumUpdates: roundConfiguration.minimumUpdates,
                plan: try plan.serializedBytes())
        } catch {
            logger.error("round \(roundId): cannot encode its plan (\(error)); no round opens", metadata: Self.about(round: roundId))
            machine = nil
            return
        }
        let codec: PlainCodec?
        let moments: FeatureMoments?
        do {
            codec = secure == nil && !statistics ? try Self.plainCodec(of: plan, parameters: global.weights.count) : nil
            moments = secure == nil && statistics ? try Self.moments(of: spec) : nil
        } catch {
            logger.error("round \(roundId): \(error.message); no round opens", metadata: Self.about(round: roundId))
            machine = nil
            return
        }
        var opened = OpenRound(
            record: record, plan: plan, opening: opening, started: moment, deadline: moment + configuration.roundTimeout,
            average: WeightedAverage(length: codec?.decodedLength ?? global.weights.count), startVersion: global.round, secure: secure, codec: codec)
        if let moments { opened.moments = (moments, [UInt32](repeating: 0, count: moments.wordCount), 0) }
        do {
            try journal.begin(opening)
            opened.journaled = true
        } catch {
            // Inputs of this round are refused as not durable until the journal can be started (tried again
            // with each input); nothing is ever appended to another round's journal.
            logger.error("cannot start the journal of round \(roundId): \(error.message)", metadata: Self.about(round: roundId))
        }
        open = opened
        logger.info(
            "round \(roundId): selected \(chosen.count) of \(eligible.count) eligible edges (target \(target))",
            metadata: Self.about(round: roundId, phase: secure == nil ? nil : "advertising", version: global.round))
        logger.debug("round \(roundId): selected", metadata: [LogPrivacy.edgeKey: .array(chosen.map { .string($0) })])
        // Selected edges hear of the round now. The others stay in their long polls: they are the first
        // candidates of the next round (sending them away here left the next selection to edges asleep in
        // retry windows, and rounds waited for them).
        for id in chosen where waiters[id] != nil {
            if let plan = planIfSelected(id, status: .idle) { resumeWaiter(id, with: plan) }
        }
    }

    private func aggregate(round: Int) {
        if open?.secure != nil {
            closeSecureMasking(round: round)
            return
        }
        if let open, open.record.round == round, let moments = open.moments {
            do { completeStatistics(open, totals: try moments.encoding.decode(sum: moments.sum), participants: moments.edges) } catch {
                abandon(round: round, reason: "feature statistics: \(error.message)")
            }
            return
        }
        guard let open, open.record.round == round, open.average.count > 0 else { return }
        complete(open, meanDelta: open.average.mean(), participants: open.average.count)
    }

    /// Applies the round's mean update (for a sketch, FetchSGD's step over the mean sketch), records the
    /// round and writes the checkpoint.
    private func complete(_ finished: OpenRound, meanDelta decoded: [Float], participants: Int) {
        var open = finished
        let round = open.record.round
        let meanDelta: [Float]
        do {
            meanDelta = try FetchSGDState.update(fromDecodedMean: decoded, of: configuration.roundCodec, length: global.weights.count, state: &fetch)
        } catch {
            abandon(round: round, reason: error.message)
            return
        }
        global.apply(meanDelta: meanDelta, threads: 2)
        _ = try? machine?.receive(.aggregated(round: round))
        open.record.state = "completed"
        open.record.participants = participants
        open.record.dropped = open.record.selected - participants
        open.record.modelVersion = global.round
        if let holdout {
            if (try? evaluator.setParameters(global.weights)) != nil {
                let metrics = evaluator.evaluate(holdout)
                open.record.accuracy = metrics.accuracy
                open.record.loss = metrics.loss
                warnIfLossIsFarAboveChance(metrics.loss, round: round, on: "the server holdout")
            }
        }
        serveCurrentModel()
        registerGlobalModel(record: open.record)
        close(open)
        guard let r = history.last else { return }
        logger.info(
            .init(stringLiteral: "round \(round): \(r.participants) updates aggregated, \(r.dropped) dropped, "
                + (r.accuracy.map { "accuracy \(String(format: "%.4f", $0)), " } ?? "")
                + "\(String(format: "%.2f", r.seconds)) s"),
            metadata: Self.about(round: round, version: global.round))
    }

    /// Encodes, hashes and signs the global model as it is now (weights and scaling), for the next plans and fetches.
    private func serveCurrentModel() {
        do {
            (modelFileBytes, modelBytes, modelHash) = try Self.encodeModel(
                spec: spec, scaling: scaling, weights: global.weights, version: global.round, download: configuration.downloadCodec)
            servedSignature = Self.signature(of: modelHash, registry: registry)
        } catch {
            logger.error("\(error.message); the edges keep the previous model")
        }
    }

    /// Fits the model's standardization from a statistics round's totals: the model file (and so its hash)
    /// changes, its weights do not, and no version is registered.
    private func completeStatistics(_ finished: OpenRound, totals: FeatureMoments.Totals, participants: Int) {
        var open = finished
        scaling = totals.standardization
        needsStatistics = false
        holdout = Self.scaled(unscaledHoldout, by: scaling)
        _ = try? machine?.receive(.aggregated(round: open.record.round))
        open.record.state = "completed"
        open.record.participants = participants
        open.record.dropped = open.record.selected - participants
        serveCurrentModel()
        logger.info(
            .init(stringLiteral: "round \(open.record.round): feature statistics of \(Int(totals.count)) rows from \(participants) edges; "
                + "the model standardizes its inputs from now on"),
            metadata: Self.about(round: open.record.round))
        close(open)
    }

    /// Warns the operator, once, of a loss far above what guessing gives: the usual sign of unscaled features.
    private func warnIfLossIsFarAboveChance(_ loss: Double, round: Int, on what: String) {
        let chance = Foundation.log(Double(spec.classCount))
        guard !warnedOfLoss, !(loss <= 10 * chance) else { return }
        warnedOfLoss = true
        logger.warning(.init(stringLiteral: "round \(round): the loss on \(what) is \(String(format: "%.4g", loss)), far above a guess's \(String(format: "%.3f", chance)): "
            + "the features are probably not scaled for this model; serve with --scale standardize (fitted from the edges' rows) "
            + "or set --input-scale, and check --lr"), metadata: Self.about(round: round))
    }

    /// `data` scaled by `scaling` (nil stays nil).
    private static func scaled(_ data: Dataset?, by scaling: FeatureScaling) -> Dataset? {
        guard var data else { return nil }
        scaling.apply(to: &data)
        return data
    }

    /// The moments encoding of a statistics round over rows that fit `spec`.
    /// - Throws: ``CoreError/Code/invalidArgument`` when it cannot encode them.
    private static func moments(of spec: ModelSpec) throws(CoreError) -> FeatureMoments {
        do { return try FeatureMoments(features: spec.inputFeatures) } catch { throw CoreError(.invalidArgument, error.message) }
    }

    private func abandon(round: Int, reason: String) {
        guard var open, open.record.round == round else { return }
        open.record.state = "failed"
        open.record.reason = reason
        open.record.participants = 0
        open.record.dropped = open.record.selected
        close(open)
        logger.warning(
            "round \(round) failed: \(reason); retrying with a fresh selection",
            metadata: Self.about(round: round, phase: open.secure.map { "\($0.phase)" }))
    }

    /// Records the round, attaches its federated evaluation to the model it evaluated, releases the edges,
    /// and writes the checkpoint.
    private func close(_ finished: OpenRound) {
        var record = finished.record
        record.seconds = now - finished.started
        if let secure = finished.secure {
            record.secureDroppedPerPhase = secure.droppedPerPhase
            record.securePhaseSeconds = secure.phaseSeconds
        }
        if finished.evaluation.examples > 0,
           let index = history.lastIndex(where: { $0.state == "completed" && $0.kind == nil && $0.modelVersion == finished.startVersion }) {
            let n = Double(finished.evaluation.examples)
            history[index].federatedAccuracy = finished.evaluation.correct / n
            history[index].federatedLoss = finished.evaluation.loss / n
            history[index].federatedExamples = finished.evaluation.examples
            warnIfLossIsFarAboveChance(finished.evaluation.loss / n, round: finished.record.round, on: "the edges' held-out rows")
            recordFederatedMetrics(modelRound: finished.startVersion, accuracy: finished.evaluation.correct / n, loss: finished.evaluation.loss / n)
        }
        history.append(record)
        membership.release(round: record.round)
        open = nil
        machine = nil
        for id in secAggWaiters.keys.sorted() {
            resumeSecAggWaiter(id, with: Flock_V1_SecAggStep.with { $0.aborted = "round \(record.round) has ended" })
        }
        // Until the checkpoint is on disk the journal still holds the round: a crash replays it, and no round
        // opens (``maybeOpenRound()`` tries the checkpoint again first).
        if persist() {
            journal.remove()
        } else {
            awaitingCheckpoint = true
            lastCheckpointAttempt = now
        }
    }

    private func persist() -> Bool {
        let folder = configuration.dataDirectory
        let lines = history.map { JSONOutput.line($0) }
        do {
            var checkpoint = RoundCheckpoint(
                model: global, spec: spec, selectionState: selection.state, history: lines, codec: CodecState(ranges: secureRanges, fetch: fetch))
            if configuration.scale == .standardize, !needsStatistics { checkpoint.scaling = scaling }
            try checkpoint.write(toFolder: folder)
            try FileIO.writeAtomically(modelFileBytes, to: folder + "/global.flockmdl")
            return true
        } catch {
            logger.error("cannot write the round checkpoint: \(error.message); the last completed round is not durable until this is fixed")
            return false
        }
    }

    // MARK: - Admin

    /// The server's state for `admin status`.
    public func status() -> Flock_V1_StatusResponse {
        var s = Flock_V1_StatusResponse()
        switch control {
        case .running: s.state = open == nil ? "waiting" : "running"
        default: s.state = control.rawValue
        }
        s.completedRounds = UInt64(global.round)
        s.currentRound = UInt64(open?.record.round ?? 0)
        s.connectedEdges = UInt32(clamping: membership.connected(now: now).count)
        s.model = configuration.model
        s.strategy = configuration.strategy.description
        s.accuracy = history.last(where: { $0.state == "completed" })?.displayAccuracy ?? 0
        s.modelHash = modelHash
        return s
    }

    /// Every edge that registered, for `admin clients`.
    public func clients() -> [Flock_V1_ClientInfo] {
        let moment = now
        return membership.edges.values.sorted { $0.id < $1.id }.map { edge in
            var info = Flock_V1_ClientInfo()
            info.edgeID = edge.id
            info.state = !membership.isConnected(edge.id, now: moment) ? "gone"
                : edge.declined != nil ? "declined" : edge.round != nil ? "training" : "idle"
            info.lastSeenSecondsAgo = max(0, moment - edge.lastSeen)
            info.roundsParticipated = UInt64(edge.participated)
            info.exampleCount = UInt64(edge.examples)
            return info
        }
    }

    /// Every round, the open one last.
    public func rounds() -> [RoundRecord] {
        var all = history
        if let open {
            var record = open.record
            record.seconds = now - open.started
            if case .collecting(_, _, let reported, _)? = machine?.state { record.participants = reported.count }
            all.append(record)
        }
        return all
    }

    /// Applies an admin control.
    /// - Throws: ``ServeRefusal/Kind/failedPrecondition`` when the command does not apply now.
    public func control(_ command: Flock_V1_ControlCommand) throws(ServeRefusal) -> Flock_V1_StatusResponse {
        switch command {
        case .start, .resume:
            guard control != .stopped else { throw ServeRefusal(.failedPrecondition, "the server is stopping") }
            guard control != .finished else {
                throw ServeRefusal(.failedPrecondition, "all \(configuration.rounds) rounds are done; restart serve with a larger --rounds to go on")
            }
            control = .running
            logger.notice("training resumed by admin")
            maybeOpenRound()
        case .pause:
            guard control == .running else { throw ServeRefusal(.failedPrecondition, "training is \(control.rawValue), not running") }
            control = .paused
            logger.notice("training paused by admin; an open round finishes")
        case .stop:
            if let open { abandon(round: open.record.round, reason: "stopped by admin") }
            control = .stopped
            logger.notice("stopped by admin; shutting down")
            for id in waiters.keys.sorted() { resumeWaiter(id, with: retry(configuration.heartbeatSeconds, "stopped")) }
            onStop?()
            onStop = nil
        case .unspecified, .UNRECOGNIZED:
            throw ServeRefusal(.invalidArgument, "unknown control command; use start, pause, resume or stop")
        }
        return status()
    }

    /// Drains the server for a shutdown (SIGTERM, SIGINT): no new round opens, every edge held in a long poll is
    /// answered at once (the server is going), and the last completed round is made durable if its checkpoint had
    /// not been written yet. An open round is left as its journal holds it: a restarted server reopens it with
    /// what it had accepted (a secure round starts over).
    public func drain() {
        let wasStopped = control == .stopped
        control = .stopped
        for id in waiters.keys.sorted() { resumeWaiter(id, with: retry(configuration.heartbeatSeconds, "the server is shutting down")) }
        for id in secAggWaiters.keys.sorted() {
            resumeSecAggWaiter(id, with: Flock_V1_SecAggStep.with { $0.aborted = "the server is shutting down" })
        }
        if awaitingCheckpoint, persist() {
            journal.remove()
            awaitingCheckpoint = false
        }
        onStop = nil
        guard !wasStopped else { return }
        logger.notice(
            .init(stringLiteral: "shutting down: no new rounds; \(global.round) completed rounds are on disk"
                + (open.map { "; round \($0.record.round) stays in the journal and reopens at the next start" } ?? "")),
            metadata: Self.about(round: open?.record.round, version: global.round))
    }

    /// Parameters of the global model.
    public var parameterCount: Int { global.weights.count }
}

// MARK: - Secure aggregation

extension Coordinator {
    /// Sets up secure aggregation of a round over `participants` and writes its parameters into `plan`.
    private func makeSecureRound(round: Int, participants: [String], plan: inout Flock_V1_RoundPlan, now moment: Double) throws(CoreError) -> ServedSecureRound {
        let ids = participants.sorted()
        // The edges' registered example counts (already known to the server) set the codec's full weight.
        let maximumWeight = max(1, ids.compactMap { membership.edges[$0]?.examples }.max() ?? 1)
        do {
            let length = global.weights.count
            // A statistics round masks feature moments; a training round its updates in the ring codec, with the
            // ranges the last secure round adapted (the codec and the model are fixed for the server's life).
            let encoding: ServedSecureRound.Encoding = plan.statistics
                ? .moments(try FeatureMoments(features: spec.inputFeatures))
                : .update(try RingCodec(
                    configuration.roundCodec, length: length, participants: ids.count, maximumWeight: maximumWeight, ranges: secureRanges,
                    initialRange: configuration.codecInitialRange, seed: plan.codec.seed))
            var parameters = SecAggConfiguration.make(
                round: UInt64(round), participants: ids, vectorLength: encoding.wordCount(length: length),
                complete: configuration.secureGraph == "complete", graphSeed: configuration.seed &+ UInt64(round),
                threshold: configuration.secureThreshold > 0 ? configuration.secureThreshold : nil)
            parameters.threshold = min(parameters.threshold, parameters.neighbourhoodSize)
            let secure = try ServedSecureRound(
                configuration: parameters, encoding: encoding, threads: ProcessInfo.processInfo.activeProcessorCount,
                now: moment, phaseLength: configuration.securePhaseSeconds)
            plan.codec.id = encoding.identifier
            if case .update(let codec) = encoding { plan.codec.ranges = codec.ranges ?? [] }
            plan.secureAggregation = Flock_V1_SecureAggregation.with {
                $0.enabled = true
                $0.graph = configuration.secureGraph
                $0.neighbours = UInt32(parameters.neighbourCount)
                $0.threshold = UInt32(parameters.threshold)
                $0.participants = ids
                $0.graphSeed = parameters.graphSeed
                $0.clip = 8
                $0.maximumWeight = UInt64(maximumWeight)
            }
            return secure
        } catch let error as CodecError {
            throw CoreError(.invalidArgument, error.message)
        } catch let error as SecAggError {
            throw CoreError(.invalidArgument, error.message)
        } catch {
            throw CoreError(.invalidArgument, "\(error)")
        }
    }

    private static func refusal(_ error: SecAggError) -> ServeRefusal {
        switch error.kind {
        case .wrongPhase, .wrongRound, .notAllowed, .tooFewSurvivors: return ServeRefusal(.failedPrecondition, error.message)
        case .duplicate: return ServeRefusal(.alreadyExists, error.message)
        case .malformed, .refused: return ServeRefusal(.invalidArgument, error.message)
        }
    }

    /// The open secure round `round` that `id` takes part in.
    private func secureRound(id: String, round: UInt64) throws(ServeRefusal) -> ServedSecureRound {
        guard let open, UInt64(open.record.round) == round else { throw ServeRefusal(.failedPrecondition, "round \(round) is not open") }
        guard let secure = open.secure else { throw ServeRefusal(.failedPrecondition, "round \(round) does not use secure aggregation") }
        guard secure.configuration.participants.contains(id) else {
            throw ServeRefusal(.failedPrecondition, "edge \(id) does not take part in round \(round)")
        }
        return secure
    }

    /// Phase 1: an edge's public keys.
    /// - Throws: ``ServeRefusal`` (nothing changes) for a bad session, round, phase or key.
    public func advertiseKeys(_ message: Flock_V1_SecAggKeys, bytes: Int) throws(ServeRefusal) {
        try authenticate(id: message.edgeID, session: message.session)
        var secure = try secureRound(id: message.edgeID, round: message.round)
        let complete: Bool
        do { complete = try secure.receive(message.advertisement()) } catch { throw Self.refusal(error) }
        open?.secure = secure
        open?.record.uploadBytes += bytes
        if complete { closeSecureAdvertising(round: Int(message.round)) }
    }

    /// Phase 2: an edge's sealed shares for its neighbours.
    /// - Throws: ``ServeRefusal`` (nothing changes) for a bad session, round, phase or share.
    public func shareKeys(_ message: Flock_V1_SecAggShares, bytes: Int) throws(ServeRefusal) {
        try authenticate(id: message.edgeID, session: message.session)
        var secure = try secureRound(id: message.edgeID, round: message.round)
        guard message.shares.count <= 254 else { throw ServeRefusal(.invalidArgument, "at most 254 sealed shares") }
        let complete: Bool
        do {
            let shares = try message.shares.map { share throws(SecAggError) in try share.share(round: message.round) }
            complete = try secure.receive(shares: shares, from: message.edgeID)
        } catch {
            throw Self.refusal(error)
        }
        open?.secure = secure
        open?.record.uploadBytes += bytes
        if complete { closeSecureSharing(round: Int(message.round)) }
    }

    /// Phase 3: an edge's masked input (its update in the round's ring codec plus all its masks).
    /// - Throws: ``ServeRefusal`` (nothing changes) for a bad session, round, phase or length.
    public func submitMasked(id: String, session: String, round: UInt64, words: [UInt32], bytes: Int) throws(ServeRefusal) {
        try authenticate(id: id, session: session)
        var secure = try secureRound(id: id, round: round)
        guard secure.expectsMaskedInput(from: id), var probe = machine else {
            throw ServeRefusal(.failedPrecondition, "round \(round) takes no masked input from \(id) now")
        }
        let roundNumber = try Self.roundNumber(round)
        do { _ = try probe.receive(.update(round: roundNumber, edge: id, now: now)) } catch {
            throw Self.refusal(error)
        }
        do { try secure.receive(MaskedInput(id: id, round: round, words: words)) } catch { throw Self.refusal(error) }
        open?.secure = secure
        open?.record.uploadBytes += bytes
        machine = probe
        if case .aggregate(let r) = probe.pendingAction { aggregate(round: r) }
    }

    /// Phase 4: the shares a survivor reveals.
    /// - Throws: ``ServeRefusal`` (nothing changes) for a bad session, round, phase or share.
    public func revealShares(_ message: Flock_V1_SecAggReveal, bytes: Int) throws(ServeRefusal) {
        try authenticate(id: message.edgeID, session: message.session)
        var secure = try secureRound(id: message.edgeID, round: message.round)
        let complete: Bool
        do { complete = try secure.receive(message.response()) } catch { throw Self.refusal(error) }
        open?.secure = secure
        open?.record.uploadBytes += bytes
        if complete { finishSecure(round: Int(message.round)) }
    }

    /// What an edge waiting for `phase` of `round` needs next; held for at most one heartbeat interval.
    /// - Throws: ``ServeRefusal`` for a bad session.
    public func awaitSecAgg(id: String, session: String, round: UInt64, phase: Flock_V1_SecAggPhase) async throws(ServeRefusal) -> Flock_V1_SecAggStep {
        try authenticate(id: id, session: session)
        guard let open, UInt64(open.record.round) == round else {
            return Flock_V1_SecAggStep.with { $0.aborted = "round \(round) is not open" }
        }
        guard let secure = open.secure else {
            return Flock_V1_SecAggStep.with { $0.aborted = "round \(round) does not use secure aggregation" }
        }
        guard secure.configuration.participants.contains(id) else {
            return Flock_V1_SecAggStep.with { $0.aborted = "edge \(id) does not take part in round \(round)" }
        }
        if let step = secure.step(for: id, waitingFor: phase) { return step }
        nextWaiterToken += 1
        let token = nextWaiterToken
        if let previous = secAggWaiters.removeValue(forKey: id) {
            previous.continuation.resume(returning: Flock_V1_SecAggStep.with { $0.wait = Flock_V1_RetryAfter.with { $0.seconds = 0 } })
        }
        let wait = configuration.heartbeatSeconds
        return await withCheckedContinuation { continuation in
            secAggWaiters[id] = SecAggWaiter(token: token, phase: phase, continuation: continuation)
            Task { [weak self] in
                try? await Task.sleep(for: .seconds(wait))
                await self?.expireSecAggWaiter(id, token: token)
            }
        }
    }

    private func expireSecAggWaiter(_ id: String, token: UInt64) {
        guard let waiter = secAggWaiters[id], waiter.token == token else { return }
        resumeSecAggWaiter(id, with: Flock_V1_SecAggStep.with { $0.wait = Flock_V1_RetryAfter.with { $0.seconds = 0 } })
    }

    private func resumeSecAggWaiter(_ id: String, with step: Flock_V1_SecAggStep) {
        guard let waiter = secAggWaiters.removeValue(forKey: id) else { return }
        waiter.continuation.resume(returning: step)
    }

    /// Hands every waiting edge what is ready for it.
    private func wakeSecAggWaiters() {
        guard let secure = open?.secure else { return }
        for (id, waiter) in secAggWaiters {
            if let step = secure.step(for: id, waitingFor: waiter.phase) { resumeSecAggWaiter(id, with: step) }
        }
    }

    /// Ends phase 1 (all advertised, or its deadline): edges without keys are lost to the round.
    private func closeSecureAdvertising(round: Int) {
        guard let secure = advanceSecure(round: round, from: .advertising, { s, moment throws(SecAggError) in try s.closeAdvertising(now: moment) })
        else { return }
        for id in secure.configuration.participants where secure.rosters[id] == nil { edgeLost(id) }
    }

    /// Ends phase 2 (all shared, or its deadline): edges that did not share are lost to the round.
    private func closeSecureSharing(round: Int) {
        guard let secure = advanceSecure(round: round, from: .sharing, { s, moment throws(SecAggError) in try s.closeSharing(now: moment) })
        else { return }
        for id in secure.configuration.participants where secure.inbox[id] == nil { edgeLost(id) }
    }

    /// Ends phase 3 when the round state machine has enough masked inputs (or its deadline passed).
    private func closeSecureMasking(round: Int) {
        _ = advanceSecure(round: round, from: .masking) { s, moment throws(SecAggError) in try s.closeMasking(now: moment) }
    }

    /// Closes `phase` of the open secure round `round` with `close`, hands waiting edges what is now ready,
    /// and returns the round's new state; abandons the round when the protocol cannot go on (fewer than t).
    private func advanceSecure(
        round: Int, from phase: ServedSecureRound.Phase, _ close: (inout ServedSecureRound, Double) throws(SecAggError) -> Void
    ) -> ServedSecureRound? {
        guard var secure = open?.secure, open?.record.round == round, secure.phase == phase else { return nil }
        do { try close(&secure, now) } catch {
            abandon(round: round, reason: "secure aggregation: \(error.message)")
            return nil
        }
        open?.secure = secure
        wakeSecAggWaiters()
        return secure
    }

    /// Ends phase 4 (all revealed, or its deadline): unmasks the sum, decodes it and completes the round.
    private func finishSecure(round: Int) {
        guard let finished = open, var secure = finished.secure, finished.record.round == round, secure.phase == .unmasking else { return }
        let finish: (outcome: ServedSecureRound.Outcome, included: [String])
        do { finish = try secure.finish(now: now) } catch {
            abandon(round: round, reason: "secure aggregation: \(error.message)")
            return
        }
        var done = finished
        done.secure = secure
        switch finish.outcome {
        case .moments(let totals):
            completeStatistics(done, totals: totals, participants: finish.included.count)
        case .update(let meanDelta, let nextRanges):
            guard meanDelta.allSatisfy(\.isFinite) else {
                abandon(round: round, reason: "the decoded sum is not finite")
                return
            }
            secureRanges = nextRanges
            complete(done, meanDelta: meanDelta, participants: finish.included.count)
        }
    }
}
