import FlockCompression
import FlockCore
import FlockCrypto
import FlockLogging
import FlockSecAgg
import FlockWire
import Foundation
import GRPCCore
import Logging
import ServiceLifecycle
import Synchronization

/// One federated edge (`flock-edge run`): registers with the server under a stable id, waits to be selected,
/// fetches the global model by hash (cached in the state folder), evaluates it on the local held-out split
/// when asked, trains on the local training split, submits the update and its example count, and keeps
/// heartbeating throughout, however long training takes. When the server is away it retries with
/// exponential backoff and jitter, and registers again when the server no longer knows its session.
///
/// Raw data never leave the process: only the update (weights delta), the example count and metrics do.
public struct EdgeAgent: Sendable {
    /// How the agent runs.
    public struct Options: Sendable {
        /// Stable edge id (1-128 of `[A-Za-z0-9._-]`).
        public var id: String
        /// Folder for cached models.
        public var stateDirectory: String
        /// Share of local rows held out for evaluation (fixed per edge id).
        public var holdout: Double
        /// Threads for local training.
        public var threads: Int
        /// Longest wait between reconnection attempts, in seconds.
        public var maximumBackoff: Double
        /// Longest wait before registering again when the server keeps ending this edge's session (another
        /// process under the same id takes it over), in seconds; the first wait is 1 s.
        public var maximumTakeoverBackoff: Double = 60
        /// Keep downloaded models in `stateDirectory/models` and reuse them (off for in-process
        /// simulation, where every edge downloads, as a device would).
        public var cacheModels: Bool
        /// Keep the `topk` error feedback in `stateDirectory` too, so that a restarted edge still sends what
        /// it had not sent (off for in-process simulation).
        public var persistCodecState: Bool
        /// Called after the server accepted an update, with its round and the local training outcome.
        public var onAccepted: (@Sendable (_ round: UInt64, _ update: LocalUpdate) -> Void)?
        /// A failure drill: the point of a secure round where the process kills itself (`--crash-at`).
        public var crash: CrashPoint?
        /// The server's model-signing key, when the operator gave it (`--server-key`); else pinned on first contact.
        public var serverKey: Ed25519.PublicKey?
        /// Follow the server's deployment: keep production (and a compared model), compare, report evidence
        /// (off for in-process simulation without a registry to feed).
        public var followsDeployment = true

        /// Creates options.
        public init(
            id: String, stateDirectory: String, holdout: Double = 0.1, threads: Int = 1, maximumBackoff: Double = 30,
            cacheModels: Bool = true, persistCodecState: Bool = true,
            onAccepted: (@Sendable (_ round: UInt64, _ update: LocalUpdate) -> Void)? = nil, crash: CrashPoint? = nil,
            serverKey: Ed25519.PublicKey? = nil
        ) {
            self.id = id
            self.stateDirectory = stateDirectory
            self.holdout = holdout
            self.threads = threads
            self.maximumBackoff = maximumBackoff
            self.cacheModels = cacheModels
            self.persistCodecState = persistCodecState
            self.onAccepted = onAccepted
            self.crash = crash
            self.serverKey = serverKey
        }
    }

    /// How it runs.
    public let options: Options
    private let training: Dataset
    let evaluation: Dataset
    let connection: EdgeConnection
    let slots: TrainingSlots
    /// This edge's logger: its id as `edge` metadata (shown at debug level only).
    let logger: Logger
    /// The server key models must be signed with.
    let trust: ServerTrust
    /// Seed derived once from the id: the held-out split and each round's local shuffling.
    private let idSeed: UInt64
    /// This edge's `topk` error feedback between rounds (what it has not sent yet).
    private let feedback = ErrorFeedbackStore<String>()

    /// Prepares an agent over `data`, split once into training and held-out rows (seeded by the id).
    /// - Throws: ``CoreError`` for a bad id or split.
    public init(
        options: Options, data: Dataset, connection: EdgeConnection, slots: TrainingSlots, logger: Logger
    ) throws(CoreError) {
        guard WireLimits.isValidEdgeId(options.id) else {
            throw CoreError(.invalidArgument, "edge id '\(options.id)': use 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
        }
        guard options.holdout >= 0, options.holdout <= 0.5 else { throw CoreError(.invalidArgument, "--holdout must be in [0, 0.5]") }
        guard data.count >= 1 else { throw CoreError(.invalidData, "\(data.source): no rows to train on") }
        self.options = options
        trust = try ServerTrust(stateDirectory: options.stateDirectory, configured: options.serverKey)
        self.connection = connection
        self.slots = slots
        var logger = logger
        logger[metadataKey: LogPrivacy.edgeKey] = .string(options.id)
        self.logger = logger
        idSeed = SHA256.hash(Array(options.id.utf8)).bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        var rng = SeededGenerator(seed: idSeed)
        let order = rng.permutation(data.count)
        let held = min(data.count - 1, Int((options.holdout * Double(data.count)).rounded()))
        evaluation = data.subset(Array(order.prefix(held)).sorted())
        training = data.subset(Array(order.dropFirst(held)).sorted())
    }

    /// Rows used for training and for evaluation.
    public var split: (training: Int, evaluation: Int) { (training.count, evaluation.count) }

    /// Runs until the task is cancelled, or until a graceful shutdown of the service group it runs in
    /// (`flock-edge run` on SIGTERM or SIGINT): then the round in progress is abandoned (the server goes on without
    /// this edge, as with any drop) and the edge leaves the federation with a `Leave` call, so that the server
    /// drops it at once instead of after its edge timeout.
    ///
    /// Every failure but a refusal of the edge itself is waited out with a backoff: a server that cannot be
    /// reached (``Options/maximumBackoff``), a server this edge does not trust (its model-signing key is not the
    /// pinned one; the log line says what to do), and a session the server ended (a server restart, or another
    /// process registering under this id and taking the session over; ``Options/maximumTakeoverBackoff``).
    /// Each wait is logged once.
    /// - Throws: ``CoreError`` when the server refuses the edge for good (a malformed registration).
    public func run() async throws(CoreError) {
        let current = CurrentSession()
        do {
            try await cancelWhenGracefulShutdown { try await self.participate(current) }
        } catch let error as CoreError {
            throw error
        } catch {
            // Cancelled (or shut down gracefully).
        }
        // A graceful shutdown leaves the task itself running: say goodbye. A cancelled task cannot call any more.
        if !Task.isCancelled, let session = current.session { await leave(session) }
    }

    /// Tells the server this edge leaves; a server that cannot be reached in a few seconds times the edge out instead.
    private func leave(_ session: Session) async {
        var request = Flock_V1_LeaveRequest()
        request.edgeID = options.id
        request.session = session.token
        request.reason = "shutting down"
        do {
            _ = try await connection.edge.leave(request, options: EdgeConnection.options(timeout: 5))
            logger.notice("left the federation")
        } catch {
            logger.notice("could not say goodbye to the server (\(Self.describe(error))); it times this edge out")
        }
    }

    /// The session the running agent holds, for its goodbye.
    private final class CurrentSession: Sendable {
        private let value = Mutex<Session?>(nil)
        var session: Session? {
            get { value.withLock { $0 } }
            set { value.withLock { $0 = newValue } }
        }
    }

    /// Registers, serves rounds and waits out failures until cancelled (``run()``).
    private func participate(_ current: CurrentSession) async throws(CoreError) {
        var outage = Backoff(initial: 0.25, maximum: options.maximumBackoff)
        var takeover = Backoff(initial: 1, maximum: options.maximumTakeoverBackoff)
        var jitter = SeededGenerator(seed: idSeed ^ UInt64(truncatingIfNeeded: ProcessInfo.processInfo.processIdentifier))
        var session: Session?
        var registeredAt = ContinuousClock.now
        func pause(_ seconds: Double) async { try? await Task.sleep(for: .milliseconds(Int(seconds * 1000))) }
        while !Task.isCancelled {
            do {
                if session == nil {
                    session = try await register()
                    current.session = session
                    registeredAt = .now
                    logger.info("registered (\(training.count) training rows, \(evaluation.count) held out)")
                }
                try await serveRounds(session: session!, onContact: { outage.reset() })
            } catch let error as RPCError where error.code == .unauthenticated {
                // The server no longer knows this session: it restarted or timed the edge out (after a long
                // session), or another process registered under this id (within moments of registering).
                session = nil
                current.session = nil
                if registeredAt.duration(to: .now) > .seconds(2 * takeover.maximum) { takeover.reset() }
                let wait = takeover.next(unit: jitter.nextUnit())
                let advice = takeover.step > takeover.initial * 2
                    ? " (the session keeps ending: if another edge runs under this id, give each edge its own --id or --state-dir)" : ""
                logger.warning("the server ended this session (\(error.message)); registering again in \(String(format: "%.1f", wait)) s\(advice)")
                await pause(wait)
            } catch let error as RPCError where error.code == .invalidArgument || error.code == .permissionDenied {
                throw CoreError(.invalidArgument, "the server refused this edge: \(error.message)")
            } catch is CancellationError {
                return
            } catch let refusal as UntrustedServer {
                // The server is up but this edge does not trust it: wait as for an outage, and look again.
                session = nil
                current.session = nil
                let wait = outage.next(unit: jitter.nextUnit())
                logger.warning("\(refusal.reason.message); retrying in \(String(format: "%.1f", wait)) s")
                await pause(wait)
            } catch {
                // A call cut short by this edge's own shutdown is no outage.
                if Task.isCancelled { return }
                // Transient (server away, overloaded, timed out): keep the session and try again later.
                let wait = outage.next(unit: jitter.nextUnit())
                logger.notice("server unreachable (\(Self.describe(error))); retrying in \(String(format: "%.1f", wait)) s")
                await pause(wait)
            }
        }
    }

    /// The metadata of an event about `round`.
    func about(_ round: UInt64) -> Logger.Metadata { ["round": .stringConvertible(round)] }

    private static func describe(_ error: any Error) -> String {
        if let rpc = error as? RPCError { return "\(rpc.code): \(rpc.message)" }
        if let core = error as? CoreError { return core.message }
        return "\(error)"
    }

    /// A registration this edge broke off: the server does not hold the model-signing key the edge trusts.
    struct UntrustedServer: Error {
        let reason: CoreError
    }

    private func register() async throws -> Session {
        var request = Flock_V1_RegisterRequest()
        request.edgeID = options.id
        request.exampleCount = UInt64(training.count)
        request.softwareVersion = "flock-edge 0.3"
        let response = try await connection.edge.register(request, options: EdgeConnection.options(timeout: 10))
        guard response.heartbeatSeconds > 0, response.heartbeatSeconds.isFinite, !response.session.isEmpty else {
            throw RPCError(code: .internalError, message: "malformed registration reply")
        }
        do {
            if try await trust.accept(announced: response.serverPublicKey) {
                logger.notice("pinned the server's model-signing key in \(trust.path)")
            }
        } catch {
            throw UntrustedServer(reason: error)
        }
        return Session(id: options.id, token: response.session, heartbeatSeconds: min(response.heartbeatSeconds, 3600))
    }

    /// Heartbeats (long polls) and works on each plan, until an error ends the session.
    private func serveRounds(session: Session, onContact: () -> Void) async throws {
        while !Task.isCancelled {
            let reply = try await session.heartbeat(connection, status: .idle, round: 0)
            onContact()
            if reply.hasDeployment, options.followsDeployment { await follow(reply.deployment, session: session) }
            switch reply.reply {
            case .plan(let plan):
                try await work(on: plan, session: session)
            case .retry(let retry):
                let seconds = retry.seconds.isFinite ? min(max(0, retry.seconds), 3600) : session.heartbeatSeconds
                if seconds > 0 { try await Task.sleep(for: .milliseconds(Int(seconds * 1000))) }
            case nil:
                try await Task.sleep(for: .milliseconds(Int(session.heartbeatSeconds * 1000)))
            }
        }
    }

    /// One round: fetch, check that this edge's data fit the model, evaluate, train, submit, with heartbeats
    /// every interval meanwhile. An edge that cannot take part (its data do not fit the model, or training fails
    /// here) declines the round at once, so that the server does not wait for it.
    private func work(on plan: Flock_V1_RoundPlan, session: Session) async throws {
        let round = plan.round
        let config: TrainingConfig
        do { config = try plan.training.trainingConfig() } catch {
            logger.error("round \(round): refusing the plan: \(error.message)", metadata: about(round))
            return
        }
        let declined = try await withThrowingTaskGroup(of: Void.self, returning: String?.self) { group in
            group.addTask {
                // Heartbeats while working; their failures surface through the submit.
                while !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(Int(session.heartbeatSeconds * 1000)))
                    _ = try? await session.heartbeat(connection, status: .training, round: round)
                }
            }
            defer { group.cancelAll() }
            let file = try await fetchModel(plan: plan, session: session)
            if let misfit = misfit(file.spec) { return misfit }
            do {
                try await train(on: plan, file: file, config: config, session: session)
            } catch let error as CoreError {
                return "training failed on this edge: \(error.message)"
            }
            return nil
        }
        if let declined { try await decline(round: round, reason: declined, session: session) }
    }

    /// Why this edge's data cannot train `spec` (a sentence that says what to do), or nil when they fit.
    func misfit(_ spec: ModelSpec) -> String? {
        let source = training.source.isEmpty || training.source == "memory" ? "" : " (now \(training.source))"
        if training.featureCount != spec.inputFeatures {
            return "this edge's data has \(training.featureCount) features per row but the server's model takes \(spec.inputFeatures); "
                + "point --data at data for this model\(source)"
        }
        if let largest = (training.labels + evaluation.labels).max(), Int(largest) >= spec.classCount {
            return "this edge's data has label \(largest) but the server's model has classes 0 to \(spec.classCount - 1); "
                + "point --data at data for this model\(source)"
        }
        return nil
    }

    /// Leaves round `round` at once, saying why: logged once, and sent to the server as a `declined` heartbeat
    /// so that it drops this edge from the round (and selects it again only after it registers again).
    private func decline(round: UInt64, reason: String, session: Session) async throws {
        logger.warning("round \(round): leaving the round: \(reason)", metadata: about(round))
        var sent = reason
        while sent.utf8.count > WireLimits.maximumReasonBytes { sent.removeLast() }
        _ = try await session.heartbeat(connection, status: .declined, round: round, reason: sent)
    }

    /// The round's work once the model is here: in secure aggregation, or plainly (train, report, submit).
    private func train(on plan: Flock_V1_RoundPlan, file: ModelFile, config: TrainingConfig, session: Session) async throws {
        let round = plan.round
        if plan.statistics {
            try await sendStatistics(on: plan, file: file, session: session)
            return
        }
        if plan.secureAggregation.enabled {
            try await workSecurely(on: plan, file: file, config: config, session: session)
            return
        }
        let (update, metrics) = try await train(file: file, config: config, evaluate: plan.evaluate)
        if let metrics { try await report(metrics, round: round, session: session) }
        let encoding = Result { () throws(CodecError) in try encode(update, plan: plan) }
        guard case .success(let (payload, nextFeedback)) = encoding else {
            if case .failure(let error) = encoding { logger.error("round \(round): cannot encode the update: \(error.message)", metadata: about(round)) }
            return
        }
        do {
            try await submit(payload: payload, codec: plan.codec.id, examples: update.examples, update: update, round: round, session: session)
            // Only an accepted update leaves the error feedback; a refused one stays in the residual.
            if let nextFeedback { keep(nextFeedback) }
            options.onAccepted?(round, update)
            logger.info(
                "round \(round): \(update.examples) examples, loss \(String(format: "%.4f", update.trainLoss)), \(String(format: "%.3f", update.seconds)) s training; update accepted",
                metadata: about(round))
        } catch let error as RPCError where error.code == .failedPrecondition || error.code == .alreadyExists {
            logger.notice("round \(round): update not taken: \(error.message)", metadata: about(round))
        }
    }

    /// The payload of `update` in the plan's codec, and for `topk` the error feedback it leaves once the
    /// server accepts it.
    /// - Throws: ``CodecError`` for a codec this edge does not know or cannot use without secure aggregation.
    private func encode(_ update: LocalUpdate, plan: Flock_V1_RoundPlan) throws(CodecError) -> (payload: [UInt8], feedback: ErrorFeedback?) {
        let spec = try CodecSpec(parsing: plan.codec.id)
        if spec == .f32 { return (LittleEndianFloats.encode(update.delta), nil) }
        let codec = try PlainCodec(spec, length: update.delta.count, seed: plan.codec.seed)
        var state = codec.keepsEdgeState ? currentFeedback() : nil
        let payload = try codec.encode(update.delta, seed: plan.training.seed ^ idSeed ^ 0xC0DE, feedback: &state)
        return (payload, state)
    }

    /// Where this edge keeps its `topk` error feedback.
    private var feedbackPath: String { options.stateDirectory + "/topk-feedback-\(options.id).flockefb" }

    /// This edge's error feedback: in memory, else as the state directory holds it (after a restart), else nil.
    private func currentFeedback() -> ErrorFeedback? {
        if let state = feedback.state(of: options.id) { return state }
        guard options.persistCodecState, FileManager.default.fileExists(atPath: feedbackPath) else { return nil }
        do {
            let (archive, _) = try Archive.read(path: feedbackPath, magic: Self.feedbackMagic, kind: "error-feedback file")
            let header = try JSONDecoder().decode([String: Int].self, from: archive.header)
            let state = try ErrorFeedback(
                residual: try archive.section("residual", path: feedbackPath), momentum: try archive.section("momentum", path: feedbackPath),
                participations: header["participations"] ?? -1)
            feedback.put(state, for: options.id)
            return state
        } catch {
            logger.warning("\(feedbackPath) is unreadable (\(error)); the error feedback starts over")
            return nil
        }
    }

    /// Keeps `state` as this edge's error feedback, in memory and (atomically) in the state directory.
    private func keep(_ state: ErrorFeedback) {
        feedback.put(state, for: options.id)
        guard options.persistCodecState else { return }
        do {
            try FileManager.default.createDirectory(atPath: options.stateDirectory, withIntermediateDirectories: true)
            let header = try JSONEncoder().encode(["participations": state.participations])
            try Archive(header: header, sections: [("residual", state.residual), ("momentum", state.momentum)])
                .write(path: feedbackPath, magic: Self.feedbackMagic)
        } catch {
            logger.error("cannot save the error feedback to \(feedbackPath): \(error); a restart would lose it")
        }
    }

    /// The 8 magic bytes of the error-feedback file.
    static let feedbackMagic = "FLOCKEFB"

    /// Evaluates the plan's model on the held-out split (when asked) and trains it on the training split, on
    /// a training slot.
    private func train(file: ModelFile, config: TrainingConfig, evaluate: Bool) async throws(CoreError) -> (LocalUpdate, EvaluationMetrics?) {
        let training = self.training
        let evaluation = self.evaluation
        let threads = options.threads
        let seed = config.seed ^ idSeed
        let evaluate = evaluate && evaluation.count > 0
        return try await slots.run { () throws(CoreError) -> (LocalUpdate, EvaluationMetrics?) in
            let model = try file.makeModel()
            model.threads = threads
            var metrics: EvaluationMetrics?
            if evaluate {
                var held = evaluation
                file.scaling.apply(to: &held)
                metrics = model.evaluate(held)
            }
            var rows = training
            file.scaling.apply(to: &rows)
            try rows.validate(featureCount: file.spec.inputFeatures, classCount: file.spec.classCount)
            let plan = LocalTrainingPlan(
                epochs: config.epochs, batchSize: config.batchSize, learningRate: config.learningRate,
                proximalMu: config.proximalMu, clipNorm: config.clipNorm)
            let update = try LocalUpdate.train(model: model, global: file.parameters, data: rows, plan: plan, seed: seed)
            return (update, metrics)
        }
    }

    /// Sends a federated evaluation of the round's starting model.
    private func report(_ metrics: EvaluationMetrics, round: UInt64, session: Session) async throws {
        var report = Flock_V1_EvaluationReport()
        report.edgeID = options.id
        report.session = session.token
        report.round = round
        report.examples = UInt64(metrics.count)
        report.loss = metrics.loss
        report.accuracy = metrics.accuracy
        do {
            _ = try await connection.edge.reportEvaluation(report, options: EdgeConnection.options(timeout: 30))
        } catch let error as RPCError where error.code == .alreadyExists {
            // Reported before the server restarted; the reopened round kept it.
            logger.info("round \(round): evaluation already recorded", metadata: about(round))
        }
    }

    /// One round under secure aggregation (Bonawitz et al. 2017; SecAgg+): advertise keys, then train while
    /// the keys are shared, mask the update's encoding in the plan's ring codec, send it, and reveal the shares the
    /// server asks for. The update itself never leaves the edge unmasked. An edge the round leaves behind
    /// (too few neighbours, a phase closed without it) drops out of this round and waits for the next.
    private func workSecurely(on plan: Flock_V1_RoundPlan, file: ModelFile, config: TrainingConfig, session: Session) async throws {
        let round = plan.round
        let secure = plan.secureAggregation
        let quantizer: RingCodec
        do {
            let spec = try CodecSpec(parsing: plan.codec.id)
            if case .quantized = spec, plan.codec.ranges.isEmpty { throw CodecError("the plan's \(spec) carries no block ranges") }
            quantizer = try RingCodec(
                spec, length: file.parameters.count, participants: secure.participants.count, maximumWeight: Int(clamping: secure.maximumWeight),
                ranges: plan.codec.ranges.isEmpty ? nil : plan.codec.ranges, seed: plan.codec.seed, clip: secure.clip)
        } catch {
            logger.error("round \(round): refusing the secure-aggregation plan: \(error)", metadata: about(round))
            return
        }
        try await withThrowingTaskGroup(of: (LocalUpdate, EvaluationMetrics?).self) { group in
            // Local training runs while the keys are exchanged.
            group.addTask { try await self.train(file: file, config: config, evaluate: plan.evaluate) }
            var trained: LocalUpdate?
            let done = try await maskedRound(
                plan: plan, vectorLength: quantizer.wordCount(length: file.parameters.count), codec: quantizer.identifier, session: session
            ) { () async throws -> [UInt32] in
                guard let (update, metrics) = try await group.next() else { throw CancellationError() }
                trained = update
                if let metrics { try await report(metrics, round: round, session: session) }
                return try quantizer.encode(update.delta, examples: update.examples, seed: config.seed ^ idSeed ^ 0xC0DE)
            }
            group.cancelAll()
            guard done, let update = trained else { return }
            options.onAccepted?(round, update)
            logger.info(
                "round \(round): \(update.examples) examples, loss \(String(format: "%.4f", update.trainLoss)), \(String(format: "%.3f", update.seconds)) s training; masked update and shares accepted",
                metadata: about(round))
        }
    }

    /// A statistics round: the feature moments of this edge's training rows as they are (unscaled), masked under
    /// secure aggregation or sent plainly, for the server to fit the model's standardization from their sum.
    func sendStatistics(on plan: Flock_V1_RoundPlan, file: ModelFile, session: Session) async throws {
        let round = plan.round
        let words: [UInt32]
        do { words = try FeatureMoments(features: file.spec.inputFeatures).encode(training) } catch {
            logger.error("round \(round): cannot encode the feature statistics: \(error.message)", metadata: about(round))
            return
        }
        if plan.secureAggregation.enabled {
            let done = try await maskedRound(plan: plan, vectorLength: words.count, codec: FeatureMoments.identifier, session: session) { words }
            if done { logger.info("round \(round): feature statistics of \(training.count) rows masked and accepted", metadata: about(round)) }
            return
        }
        let none = LocalUpdate(delta: [], examples: training.count, trainLoss: 0, seconds: 0)
        do {
            try await submit(
                payload: LittleEndianFloats.encodeWords(words), codec: FeatureMoments.identifier, examples: training.count, update: none,
                round: round, session: session)
            logger.info("round \(round): feature statistics of \(training.count) rows accepted", metadata: about(round))
        } catch let error as RPCError where error.code == .failedPrecondition || error.code == .alreadyExists {
            logger.notice("round \(round): feature statistics not taken: \(error.message)", metadata: about(round))
        }
    }

    /// The secure-aggregation protocol of round `plan` for one vector of `vectorLength` words in `codec`: advertise
    /// keys, share them with the neighbours, mask `input()` (called once the shares have arrived, so that work such
    /// as training overlaps the key exchange), send it, and reveal the shares the server asks for.
    /// - Returns: true when this edge's masked input and shares were accepted; false when the round went on without
    ///   it (a phase closed without it, too few neighbours), which is logged.
    private func maskedRound(
        plan: Flock_V1_RoundPlan, vectorLength: Int, codec: String, session: Session, input: () async throws -> [UInt32]
    ) async throws -> Bool {
        let round = plan.round
        var client: SecAggClient
        do {
            let configuration = try plan.secureAggregation.configuration(round: round, vectorLength: vectorLength)
            client = try SecAggClient(id: options.id, configuration: configuration)
            client.threads = options.threads
        } catch {
            logger.error("round \(round): refusing the secure-aggregation plan: \(error)", metadata: about(round))
            return false
        }
        let options = EdgeConnection.options(timeout: 60)
        do {
            var keys = Flock_V1_SecAggKeys(try client.advertise())
            keys.session = session.token
            _ = try await connection.edge.advertiseKeys(keys, options: options)
            guard case .roster(let roster)? = try await awaitSecAgg(.roster, round: round, session: session) else { return false }
            self.options.crash?.fire(at: .shareKeys, round: round, edge: self.options.id)
            var shares = Flock_V1_SecAggShares()
            shares.edgeID = self.options.id
            shares.session = session.token
            shares.round = round
            shares.shares = try client.shareKeys(roster: roster.keys.map { keys throws(SecAggError) in try keys.advertisement() })
                .map(Flock_V1_SealedShare.init)
            _ = try await connection.edge.shareKeys(shares, options: options)
            logger.info("round \(round): keys shared with \(shares.shares.count) neighbours", metadata: about(round))
            guard case .inbox(let inbox)? = try await awaitSecAgg(.inbox, round: round, session: session) else { return false }
            let words = try await input()
            self.options.crash?.fire(at: .maskedInput, round: round, edge: self.options.id)
            let masked = try client.maskedInput(words, shares: inbox.shares.map { share throws(SecAggError) in try share.share(round: round) })
            let none = LocalUpdate(delta: [], examples: 0, trainLoss: 0, seconds: 0)
            try await submit(payload: LittleEndianFloats.encodeWords(masked.words), codec: codec, examples: 0, update: none, round: round, session: session, masked: true)
            guard case .unmask(let request)? = try await awaitSecAgg(.unmask, round: round, session: session) else { return false }
            var reveal = Flock_V1_SecAggReveal(try client.unmask(request.request(round: round)))
            reveal.session = session.token
            _ = try await connection.edge.revealShares(reveal, options: options)
            return true
        } catch let error as SecAggError {
            logger.warning("round \(round): leaving secure aggregation: \(error.message)", metadata: about(round))
        } catch let error as CodecError {
            logger.error("round \(round): cannot encode the update: \(error.message)", metadata: about(round))
        } catch let error as RPCError where error.code == .failedPrecondition || error.code == .alreadyExists || error.code == .invalidArgument {
            logger.notice("round \(round): secure aggregation went on without this edge: \(error.message)", metadata: about(round))
        }
        return false
    }

    /// Polls until the server has what this edge waits for in `phase`; nil when the round went on without it.
    private func awaitSecAgg(_ phase: Flock_V1_SecAggPhase, round: UInt64, session: Session) async throws -> Flock_V1_SecAggStep.OneOf_Step? {
        var poll = Flock_V1_SecAggPoll()
        poll.edgeID = options.id
        poll.session = session.token
        poll.round = round
        poll.phase = phase
        while !Task.isCancelled {
            let step = try await connection.edge.awaitSecAgg(poll, options: EdgeConnection.options(timeout: session.heartbeatSeconds + 15))
            switch step.step {
            case .wait, nil:
                continue
            case .aborted(let reason):
                logger.notice("round \(round): left out of secure aggregation: \(reason)", metadata: about(round))
                return nil
            case .some(let ready):
                return ready
            }
        }
        throw CancellationError()
    }

    /// The plan's model: from the cache when its hash is there, otherwise streamed, checked and cached.
    private func fetchModel(plan: Flock_V1_RoundPlan, session: Session) async throws -> ModelFile {
        let folder = options.stateDirectory + "/models"
        let path = folder + "/" + plan.modelHash + ".flockmdl"
        guard SHA256.Digest(hex: plan.modelHash) != nil else { throw RPCError(code: .internalError, message: "plan names a malformed model hash") }
        if options.cacheModels, FileManager.default.fileExists(atPath: path), let (file, hash) = try? ModelFile.read(from: path),
           hash.hex == plan.modelHash {
            return file
        }
        let limit = Int(min(plan.modelBytes, 1 << 30))
        var request = Flock_V1_FetchModelRequest()
        request.edgeID = options.id
        request.session = session.token
        request.modelHash = plan.modelHash
        let download: ModelDownload
        do { download = plan.downloadCodec.isEmpty ? .f32 : try ModelDownload(parsing: plan.downloadCodec) } catch {
            throw RPCError(code: .invalidArgument, message: "the plan's download codec: \(error.message)")
        }
        let (received, signature) = try await streamModel(request, limit: limit)
        do { try await trust.verify(signature: signature, hash: plan.modelHash) } catch {
            throw RPCError(code: .dataLoss, message: "round \(plan.round)'s model: \(error.message)")
        }
        // A compressed download is rebuilt into the served model's file first; decoding verifies the file's
        // own SHA-256 trailer, and the content hash must also be the plan's.
        let bytes: [UInt8]
        do { bytes = download == .f32 ? received : try download.decode(received, source: "model \(plan.modelHash.prefix(12))").encoded().bytes } catch {
            throw RPCError(code: .dataLoss, message: "the \(download.identifier) download: \(error.message)")
        }
        let (file, hash) = try ModelFile.decode(bytes: bytes, source: "model \(plan.modelHash.prefix(12))")
        guard hash.hex == plan.modelHash else {
            throw RPCError(code: .dataLoss, message: "downloaded model does not match hash \(plan.modelHash)")
        }
        guard options.cacheModels else { return file }
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileIO.writeAtomically(bytes, to: path)
        // Keep the two newest models.
        if let names = try? FileManager.default.contentsOfDirectory(atPath: folder) {
            let cached = names.filter { $0.hasSuffix(".flockmdl") }.map { folder + "/" + $0 }
            let dated = cached.compactMap { p -> (String, Date)? in
                guard let d = (try? FileManager.default.attributesOfItem(atPath: p))?[.modificationDate] as? Date else { return nil }
                return (p, d)
            }.sorted { $0.1 > $1.1 }
            for (old, _) in dated.dropFirst(2) where old != path { try? FileManager.default.removeItem(atPath: old) }
        }
        return file
    }

    /// Streams a model by hash: its bytes (at most `limit`) and the server's signature from the first chunk.
    func streamModel(_ request: Flock_V1_FetchModelRequest, limit: Int) async throws -> (bytes: [UInt8], signature: [UInt8]) {
        try await connection.edge.fetchModel(request, options: EdgeConnection.options(timeout: 300)) { response in
            var bytes = [UInt8]()
            var signature = [UInt8]()
            for try await chunk in response.messages {
                guard chunk.offset == UInt64(bytes.count), bytes.count + chunk.data.count <= limit else {
                    throw RPCError(code: .dataLoss, message: "model stream out of order or longer than \(limit) bytes")
                }
                if chunk.offset == 0 { signature = Array(chunk.signature) }
                bytes.append(contentsOf: chunk.data)
            }
            return (bytes, signature)
        }
    }

    private func submit(payload: [UInt8], codec: String, examples: Int, update: LocalUpdate, round: UInt64, session: Session, masked: Bool = false) async throws {
        var header = Flock_V1_UpdateHeader()
        header.edgeID = options.id
        header.session = session.token
        header.round = round
        header.codec = codec
        header.exampleCount = UInt64(examples)
        header.payloadBytes = UInt64(payload.count)
        // A masked input says nothing about the edge in the clear, its training loss and time included.
        header.trainLoss = masked ? 0 : update.trainLoss
        header.trainSeconds = masked ? 0 : update.seconds
        let first = Flock_V1_UpdateChunk.with { $0.header = header }
        let response = try await connection.edge.submitUpdate(options: EdgeConnection.options(timeout: 300)) { writer in
            try await writer.write(first)
            var offset = 0
            while offset < payload.count {
                let end = min(payload.count, offset + WireLimits.maximumChunkBytes)
                var chunk = Flock_V1_UpdateChunk()
                chunk.data = Data(payload[offset..<end])
                try await writer.write(chunk)
                offset = end
            }
        }
        guard response.accepted else { throw RPCError(code: .failedPrecondition, message: response.message) }
    }
}

/// An edge's registration with the server.
struct Session: Sendable {
    let id: String
    let token: String
    let heartbeatSeconds: Double

    func heartbeat(_ connection: EdgeConnection, status: Flock_V1_EdgeStatus, round: UInt64, reason: String = "") async throws -> Flock_V1_HeartbeatResponse {
        var request = Flock_V1_HeartbeatRequest()
        request.edgeID = id
        request.session = token
        request.status = status
        request.round = round
        request.reason = reason
        // The server may hold an idle heartbeat for one interval (a long poll).
        return try await connection.edge.heartbeat(request, options: EdgeConnection.options(timeout: heartbeatSeconds + 15))
    }
}

/// Bounds how many edges of one process train at once (`--simulate-clients`), and runs training on a
/// dispatch thread so that the async threads stay free for heartbeats.
public actor TrainingSlots {
    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// Allows `count` trainings at once.
    public init(count: Int) { free = max(1, count) }

    /// Runs `work` on a dispatch thread once a slot is free.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws(CoreError) -> T) async throws(CoreError) -> T {
        if free == 0 { await withCheckedContinuation { waiting.append($0) } } else { free -= 1 }
        defer { if waiting.isEmpty { free += 1 } else { waiting.removeFirst().resume() } }
        let result: Result<T, CoreError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: Result { () throws(CoreError) -> T in try work() }) }
        }
        return try result.get()
    }
}
