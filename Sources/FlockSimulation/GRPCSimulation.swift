import FlockCompression
import FlockCore
import FlockEdge
import FlockLogging
import FlockServer
import FlockWire
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Logging
import Synchronization

/// `flock-server simulate --transport grpc`: the serving code itself, end to end, in one process. The
/// ``Coordinator`` behind the real ``EdgeServiceHandler`` in a `GRPCServer`, and one ``EdgeAgent`` per edge
/// (the code of `flock-edge run`), talking protobuf over grpc-swift's in-process transport instead of
/// HTTP/2 over TCP. Every byte of every message is serialized, framed and checked as on the network.
///
/// Same options, partition, model and seeds as the direct ``Simulation``. Round reports come from the
/// coordinator's round records: `seconds` runs from plan to aggregate (the holdout evaluation
/// included), bytes are the serialized messages with their frames, and `trainingSeconds` is the edges'
/// summed local training time divided by the number trained at once (the busy time of the training
/// threads). Which edges a round selects depends on which are waiting at that moment, so the accuracy
/// matches the direct simulation's closely rather than bit for bit.
public struct GRPCSimulation: Sendable {
    /// The options of this run.
    public let options: Simulation.Options

    /// Creates a simulation.
    public init(options: Simulation.Options) { self.options = options }

    /// Runs every round.
    /// - Parameter onRound: called once per completed round, in order.
    /// - Throws: ``CoreError`` for bad data or options; transport errors.
    public func run(onRound: @escaping @Sendable (Simulation.RoundReport) -> Void = { _ in }) async throws -> Simulation.Summary {
        let o = options
        try o.validate()
        let train = try Dataset.loadCSV(path: o.trainPath)
        let eval = try Dataset.loadCSV(path: o.evalPath)
        let classes = max(train.classCount, eval.classCount)
        let shares = try o.partition.partition(labels: train.labels, clients: o.clients, seed: o.seed)

        let folder = o.stateFolder ?? o.registryFolder
        let temporary = folder == nil ? FileManager.default.temporaryDirectory.path + "/flock-simulate-\(UUID().uuidString)" : nil
        defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
        var configuration = ServerConfiguration()
        // The served coordinator keeps its checkpoint and its registry in one data directory.
        configuration.dataDirectory = folder ?? temporary!
        configuration.promotion = o.promotion
        configuration.model = o.model
        configuration.inputFeatures = train.featureCount
        configuration.classes = classes
        if o.standardize {
            // The served coordinator's statistics round fits the standardization from the edges' rows.
            configuration.scale = .standardize
        } else if case .max(let top) = FeatureScaling.fit(.max, to: train) {
            configuration.inputScale = Double(top)
        } else {
            configuration.inputScale = 0
        }
        configuration.holdoutPath = o.evalPath
        configuration.rounds = o.rounds
        configuration.clientsPerRound = o.selectedPerRound
        // Every selected edge reports (no stragglers in one process): no over-selection, and a round waits
        // until the whole selection is free.
        configuration.minimumClients = o.selectedPerRound
        configuration.overSelection = 0
        configuration.roundTimeout = 3600
        configuration.heartbeatSeconds = 1
        // Every idle edge waits in a long poll, so that a selected edge hears of its round at once rather
        // than after a pace-steered retry window (a selection the round must wait for in full).
        configuration.longPollCapacity = o.clients
        configuration.edgeTimeout = 120
        configuration.strategy = o.strategy
        configuration.secureAggregation = o.secureAggregation != nil
        if let secure = o.secureAggregation {
            configuration.secureGraph = secure.graph
            configuration.secureThreshold = secure.threshold ?? 0
            configuration.securePhaseSeconds = 60
            configuration.codec = secure.codec
            configuration.codecInitialRange = secure.initialRange
        } else {
            configuration.codec = o.codec
        }
        configuration.downloadCodec = o.downloadCodec
        configuration.federatedEvaluation = false
        configuration.epochs = o.plan.epochs
        configuration.batchSize = o.plan.batchSize
        configuration.learningRate = o.plan.learningRate
        configuration.clipNorm = o.plan.clipNorm ?? 0
        configuration.seed = o.seed

        let coordinator = try Coordinator(configuration: configuration, waitForStart: true, logger: .disabled(label: "flock.simulation.server"))
        // Training rounds only: a statistics round (`--scale standardize`) makes no model.
        let done = (await coordinator.rounds()).filter { $0.state == "completed" && $0.kind == nil }.count
        let transport = InProcessTransport()
        let server = GRPCServer(transport: transport.server, services: [EdgeServiceHandler(coordinator: coordinator)])
        let connection = EdgeConnection(transport: transport.client)
        let slots = TrainingSlots(count: o.threads)
        let trainingSeconds = Mutex<[UInt64: Double]>([:])
        let agents = try shares.enumerated().map { index, rows throws(CoreError) -> EdgeAgent in
            var agentOptions = EdgeAgent.Options(
                id: "edge-\(index)", stateDirectory: configuration.dataDirectory, holdout: o.registryFolder == nil ? 0 : o.heldOutShare, threads: 1, cacheModels: false, persistCodecState: false,
                onAccepted: { round, update in trainingSeconds.withLock { $0[round, default: 0] += update.seconds } })
            // Without --data-dir nobody looks at the registry: the edges need not serve or compare its versions.
            agentOptions.followsDeployment = o.registryFolder != nil
            return try EdgeAgent(options: agentOptions, data: train.subset(rows), connection: connection, slots: slots, logger: .disabled(label: "flock.simulation.edge"))
        }

        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            group.addTask { try await connection.run() }
            for agent in agents { group.addTask { try await agent.run() } }
            defer {
                group.cancelAll()
                connection.close()
                server.beginGracefulShutdown()
            }
            // Start once every edge is registered, so that the first round can select from all of them.
            while await coordinator.status().connectedEdges < UInt32(agents.count) {
                try await Task.sleep(for: .milliseconds(5))
            }
            if await coordinator.status().state == "idle" { _ = try? await coordinator.control(.start) }

            var reported = 0
            var reports = [Simulation.RoundReport]()
            while true {
                await coordinator.tick()
                let completed = await coordinator.rounds().filter { $0.state == "completed" && $0.kind == nil }
                for (index, record) in completed.enumerated().dropFirst(reported) {
                    let busy = trainingSeconds.withLock { $0[UInt64(record.round)] ?? 0 }
                    let report = Simulation.RoundReport(
                        round: record.modelVersion, accuracy: record.accuracy ?? .nan, loss: record.loss ?? .nan,
                        participants: record.participants, seconds: record.seconds,
                        trainingSeconds: busy / Double(max(1, min(o.threads, record.participants))),
                        uploadBytes: record.uploadBytes, downloadBytes: record.downloadBytes)
                    reports.append(report)
                    // Rounds of an earlier run (resumed from --state-dir) were reported then.
                    if index >= done { onRound(report) }
                }
                reported = completed.count
                if reported >= o.rounds { break }
                try await Task.sleep(for: .milliseconds(2))
            }
            return try Simulation.Summary(
                reports: reports, timed: Array(reports.dropFirst(done)), clients: o.clients, parameters: await coordinator.parameterCount)
        }
    }
}
