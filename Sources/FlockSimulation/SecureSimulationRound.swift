import FlockCompression
import FlockCore
import FlockCrypto
import FlockEdge
import FlockSecAgg
import Foundation
import Synchronization

/// How `simulate` runs secure aggregation.
public struct SecureAggregationOptions: Sendable, Equatable {
    /// `complete` (Bonawitz et al. 2017) or the sparse `secagg+` graph (Bell et al. 2020).
    public var complete: Bool
    /// Shares needed to reconstruct a secret; nil for the default (two thirds of a neighbourhood).
    public var threshold: Int?
    /// Share of each round's selected edges that drop out, each at a random phase.
    public var dropFraction: Double
    /// Largest |r Δ_i| the fixed-point codec keeps.
    public var clip: Float
    /// The ring codec: `fixed32`, `q{b}` or `rot+q{b}`.
    public var codec: CodecSpec
    /// The first round's range of every block under a quantizing codec (later rounds adapt it).
    public var initialRange: Float

    /// Creates options.
    public init(
        complete: Bool = false, threshold: Int? = nil, dropFraction: Double = 0, clip: Float = 8, codec: CodecSpec = .fixed32,
        initialRange: Float = 0.01
    ) {
        self.complete = complete
        self.threshold = threshold
        self.dropFraction = dropFraction
        self.clip = clip
        self.codec = codec
        self.initialRange = initialRange
    }

    /// The graph's name in plans and reports.
    public var graph: String { complete ? "complete" : "secagg+" }

    /// Checks the ranges.
    /// - Throws: ``CoreError/Code/invalidArgument`` naming the bad value.
    public func validate() throws(CoreError) {
        guard dropFraction >= 0, dropFraction < 1 else { throw CoreError(.invalidArgument, "--drop-fraction must be in [0, 1)") }
        if let threshold, threshold < 1 { throw CoreError(.invalidArgument, "--threshold must be at least 1") }
        do { try codec.check(secureAggregation: true) } catch { throw CoreError(.invalidArgument, error.message) }
        guard initialRange.isFinite, initialRange > 0 else { throw CoreError(.invalidArgument, "--initial-range must be positive") }
    }

    /// The round's ring codec for `length` values, `participants` summands and full weight at `maximumWeight`
    /// examples; `ranges` are a quantizer's block ranges (nil: ``initialRange`` everywhere).
    /// - Throws: ``CoreError/Code/invalidArgument`` when the codec cannot take that many summands.
    public func ringCodec(length: Int, participants: Int, maximumWeight: Int, ranges: [Float]?, seed: UInt64) throws(CoreError) -> RingCodec {
        do {
            return try RingCodec(
                codec, length: length, participants: participants, maximumWeight: maximumWeight, ranges: ranges, initialRange: initialRange,
                seed: seed, clip: clip)
        } catch {
            throw CoreError(.invalidArgument, error.message)
        }
    }
}

/// What secure aggregation did in one round: the graph, and per phase (advertise keys, share keys, masked
/// input, unmask) how many edges dropped and how long the phase took.
public struct SecureRoundReport: Sendable, Codable, Equatable {
    /// `complete` or `secagg+`.
    public var graph: String
    /// Neighbours per edge (k).
    public var neighbours: Int
    /// Reconstruction threshold (t).
    public var threshold: Int
    /// Edges that dropped in each phase.
    public var droppedPerPhase: [Int]
    /// Wall time of each phase, in seconds (edges' and server's work together; the masked-input phase
    /// includes local training).
    public var phaseSeconds: [Double]
    /// Why the round aborted (fewer than the threshold survived), when it did.
    public var abortReason: String?

    enum CodingKeys: String, CodingKey {
        case graph, neighbours, threshold
        case droppedPerPhase = "dropped_per_phase"
        case phaseSeconds = "phase_seconds"
        case abortReason = "abort_reason"
    }
}

/// One round of in-process federated training under secure aggregation: the selected edges run
/// ``SecAggClient`` and the server ``SecAggServer`` with every message passed in memory, so the server's
/// code sees only masked vectors and their sum. Drop-outs are injected at random phases.
struct SecureSimulationRound {
    /// The round's outcome.
    struct Outcome {
        /// The example-weighted mean update of the survivors, or nil when the round aborted.
        var meanDelta: [Float]?
        /// Edges whose updates are in the mean.
        var included: Int
        /// Busiest worker's local training time.
        var trainingSeconds: Double
        /// Bytes every edge sent (keys, sealed shares, masked vector, revealed shares).
        var uploadBytes: Int
        /// What the protocol did.
        var report: SecureRoundReport
        /// A quantizing codec's ranges for the next round.
        var nextRanges: [Float]?
    }

    let options: SecureAggregationOptions
    let round: Int
    let selected: [Int]
    let edges: [Dataset]
    let workers: [Model]
    let global: [Float]
    let plan: LocalTrainingPlan
    let seed: UInt64
    /// A quantizing codec's block ranges for this round (nil: the initial range).
    let ranges: [Float]?

    /// The phase (0-3) at which each dropping edge stops, from a generator seeded by the round.
    static func dropPhases(ids: [String], fraction: Double, seed: UInt64) -> [String: Int] {
        var rng = SeededGenerator(seed: seed ^ 0xD40F_F0E5)
        let count = Int((fraction * Double(ids.count)).rounded())
        let chosen = rng.permutation(ids.count).prefix(count)
        var phases = [String: Int]()
        for i in chosen { phases[ids[i]] = Int(rng.next() % 4) }
        return phases
    }

    func run() throws(CoreError) -> Outcome {
        let ids = selected.map { "edge-\($0)" }
        let edgeOf = Dictionary(uniqueKeysWithValues: zip(ids, selected))
        let drops = Self.dropPhases(ids: ids, fraction: options.dropFraction, seed: seed)
        let stays = { (id: String, phase: Int) in (drops[id] ?? 4) > phase }
        let maximumWeight = max(1, selected.map { edges[$0].count }.max() ?? 1)
        let quantizer = try options.ringCodec(length: global.count, participants: ids.count, maximumWeight: maximumWeight, ranges: ranges, seed: seed)
        let configuration = SecAggConfiguration.make(
            round: UInt64(round), participants: ids, vectorLength: quantizer.wordCount(length: global.count),
            complete: options.complete, graphSeed: seed, threshold: options.threshold)
        var report = SecureRoundReport(
            graph: options.graph, neighbours: configuration.neighbourCount, threshold: configuration.threshold,
            droppedPerPhase: [0, 0, 0, 0], phaseSeconds: [0, 0, 0, 0])
        var upload = 0
        var clock = Date()
        func lap(_ phase: Int) {
            report.phaseSeconds[phase] = Date().timeIntervalSince(clock)
            clock = Date()
        }
        func aborted(_ error: SecAggError, server: SecAggServer?) -> Outcome {
            report.abortReason = error.message
            if let server { report.droppedPerPhase = server.droppedPerPhase }
            return Outcome(meanDelta: nil, included: 0, trainingSeconds: 0, uploadBytes: upload, report: report, nextRanges: nil)
        }
        do {
            var server = try SecAggServer(configuration: configuration)
            server.threads = workers.count
            // Phase 1: advertise keys.
            var clients = [String: SecAggClient]()
            for id in configuration.participants where stays(id, 0) {
                var client = try SecAggClient(id: id, configuration: configuration)
                try server.receive(client.advertise())
                upload += 64
                clients[id] = client
            }
            let rosters: [String: [KeyAdvertisement]]
            do { rosters = try server.closeAdvertising() } catch { return aborted(error, server: server) }
            lap(0)

            // Phase 2: share keys (X25519, Shamir and AEAD per neighbour: spread over the workers).
            let sharing = configuration.participants.filter { stays($0, 1) && rosters[$0] != nil }
            let shared = Parallel.map(sharing.count) { i -> Result<(SecAggClient, [EncryptedShare]), SecAggError> in
                var client = clients[sharing[i]]!
                return Result { () throws(SecAggError) in
                    let shares = try client.shareKeys(roster: rosters[sharing[i]]!)
                    return (client, shares)
                }
            }
            for (id, result) in zip(sharing, shared) {
                // An edge whose neighbourhood is below the threshold cannot go on: it drops out here.
                if case .failure(let error) = result, error.kind == .tooFewSurvivors { continue }
                let (client, shares) = try result.get()
                clients[id] = client
                try server.receive(shares: shares, from: id)
                upload += shares.reduce(0) { $0 + $1.box.count }
            }
            let inbox: [String: [EncryptedShare]]
            do { inbox = try server.closeSharing() } catch { return aborted(error, server: server) }
            lap(1)

            // Phase 3: local training, encoding and masking, on the workers; the server adds each masked vector.
            let masking = configuration.participants.filter { stays($0, 2) && inbox[$0] != nil }
            let next = Atomic<Int>(0)
            let perWorker = Parallel.map(min(workers.count, masking.count)) { w -> ([(Int, Result<(SecAggClient, MaskedInput)?, CoreError>)], Double) in
                var done = [(Int, Result<(SecAggClient, MaskedInput)?, CoreError>)]()
                var seconds = 0.0
                while true {
                    let i = next.add(1, ordering: .relaxed).oldValue
                    guard i < masking.count else { break }
                    let id = masking[i], edge = edgeOf[id]!
                    done.append((i, Result { () throws(CoreError) -> (SecAggClient, MaskedInput)? in
                        let run = try LocalTraining.run(model: workers[w], global: global, data: edges[edge], plan: plan, seed: seed ^ UInt64(edge))
                        seconds += run.seconds
                        var client = clients[id]!
                        do {
                            let words = try workers[w].withParameters { local in
                                try global.withUnsafeBufferPointer { start in
                                    try quantizer.encode(
                                        local: UnsafeBufferPointer(local), minus: start, examples: run.examples, seed: seed ^ UInt64(edge) ^ 0xC0DE)
                                }
                            }
                            let masked = try client.maskedInput(words, shares: inbox[id]!)
                            return (client, masked)
                        } catch let error as CodecError {
                            throw CoreError(.invalidData, "round \(round): \(id): \(error.message)")
                        } catch let error as SecAggError where error.kind == .tooFewSurvivors {
                            return nil  // too few of its neighbours shared keys: it drops out here
                        } catch let error as SecAggError {
                            throw CoreError(.invalidData, "round \(round): \(id): \(error.message)")
                        } catch {
                            throw CoreError(.invalidData, "round \(round): \(id): \(error)")
                        }
                    }))
                }
                return (done, seconds)
            }
            var inputs = [(Int, SecAggClient, MaskedInput)]()
            for (done, _) in perWorker {
                for (i, result) in done {
                    if let pair = try result.get() { inputs.append((i, pair.0, pair.1)) }
                }
            }
            for (i, client, masked) in inputs.sorted(by: { $0.0 < $1.0 }) {
                clients[masking[i]] = client
                try server.receive(masked)
                upload += masked.words.count * 4
            }
            let requests: [String: UnmaskRequest]
            do { requests = try server.closeMasking() } catch { return aborted(error, server: server) }
            lap(2)

            // Phase 4: survivors reveal shares; the server removes the masks.
            for id in configuration.participants where stays(id, 3) {
                guard let request = requests[id], var client = clients[id] else { continue }
                let answer = Result { () throws(SecAggError) in try client.unmask(request) }
                if case .failure(let error) = answer, error.kind == .tooFewSurvivors { continue }
                let response = try answer.get()
                try server.receive(response)
                upload += (1 + MaskStream.seedBytes) * (response.seedShares.count + response.keyShares.count)
            }
            let result: (sum: [UInt32], included: [String])
            do { result = try server.finish() } catch { return aborted(error, server: server) }
            lap(3)
            report.droppedPerPhase = server.droppedPerPhase
            let decoded: (mean: [Float], totalWeight: Double, nextRanges: [Float]?)
            do { decoded = try quantizer.decodeMean(sum: result.sum, summands: result.included.count) } catch {
                throw CoreError(.invalidData, "round \(round): \(error.message)")
            }
            return Outcome(
                meanDelta: decoded.mean, included: result.included.count,
                trainingSeconds: perWorker.map(\.1).max() ?? 0, uploadBytes: upload, report: report, nextRanges: decoded.nextRanges)
        } catch let error as SecAggError {
            // Every message here comes from honest in-process edges: a refusal is a bug, not a drop-out.
            throw CoreError(.invalidData, "round \(round): secure aggregation refused a message: \(error.message)")
        } catch let error as CoreError {
            throw error
        } catch {
            throw CoreError(.invalidData, "round \(round): \(error)")
        }
    }
}
