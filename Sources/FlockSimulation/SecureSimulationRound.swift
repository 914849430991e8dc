import FlockCompression
import FlockCore
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
    /// Rounds (by round id) in which every selected edge drops out before advertising its keys, so that the round
    /// aborts whatever the threshold: a deterministic aborted round for tests of what follows one. Empty in
    /// `flock-server simulate`, which has no option for it: there drop-outs come from ``dropFraction`` only.
    public var abortedRounds: Set<Int> = []

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

/// One round of in-process federated training under secure aggregation: the selected edges train, encode
/// their updates in the round's ring codec and run the protocol through ``InProcessSecureRound``, so the
/// server's code sees only masked vectors and their sum. Drop-outs are injected at random phases.
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
        let drops = options.abortedRounds.contains(round)
            ? Dictionary(uniqueKeysWithValues: ids.map { ($0, 0) }) : Self.dropPhases(ids: ids, fraction: options.dropFraction, seed: seed)
        let maximumWeight = max(1, selected.map { edges[$0].count }.max() ?? 1)
        let quantizer = try options.ringCodec(length: global.count, participants: ids.count, maximumWeight: maximumWeight, ranges: ranges, seed: seed)
        let configuration = SecAggConfiguration.make(
            round: UInt64(round), participants: ids, vectorLength: quantizer.wordCount(length: global.count),
            complete: options.complete, graphSeed: seed, threshold: options.threshold)
        // Participants are the selected edges, sorted by id.
        let edgeOf = Dictionary(uniqueKeysWithValues: zip(ids, selected))
        let trainingSeconds = Mutex([Double](repeating: 0, count: workers.count))
        let driver = InProcessSecureRound(configuration: configuration, workers: workers.count, serverThreads: workers.count) { id, phase in (drops[id] ?? 4) > phase }
        // Phase 3's input: local training on the worker's model, then the round's ring encoding.
        let outcome = try driver.run { participant, w throws(CoreError) -> [UInt32]? in
            let id = configuration.participants[participant], edge = edgeOf[id]!
            let run = try LocalTraining.run(model: workers[w], global: global, data: edges[edge], plan: plan, seed: seed ^ UInt64(edge))
            trainingSeconds.withLock { $0[w] += run.seconds }
            do {
                return try workers[w].withParameters { local in
                    try global.withUnsafeBufferPointer { start in
                        try quantizer.encode(local: UnsafeBufferPointer(local), minus: start, examples: run.examples, seed: seed ^ UInt64(edge) ^ 0xC0DE)
                    }
                }
            } catch let error as CodecError {
                throw CoreError(.invalidData, "round \(round): \(id): \(error.message)")
            } catch {
                throw CoreError(.invalidData, "round \(round): \(id): \(error)")
            }
        }
        let report = SecureRoundReport(
            graph: options.graph, neighbours: configuration.neighbourCount, threshold: configuration.threshold,
            droppedPerPhase: outcome.droppedPerPhase, phaseSeconds: outcome.phaseSeconds, abortReason: outcome.abortReason)
        let upload = outcome.bytes.reduce(0, +)
        guard let result = outcome.result else {
            return Outcome(meanDelta: nil, included: 0, trainingSeconds: 0, uploadBytes: upload, report: report, nextRanges: nil)
        }
        let decoded: (mean: [Float], totalWeight: Double, nextRanges: [Float]?)
        do throws(CodecError) { decoded = try quantizer.decodeMean(sum: result.sum, summands: result.included.count) } catch {
            throw CoreError(.invalidData, "round \(round): \(error.message)")
        }
        return Outcome(
            meanDelta: decoded.mean, included: result.included.count, trainingSeconds: trainingSeconds.withLock { $0.max() ?? 0 },
            uploadBytes: upload, report: report, nextRanges: decoded.nextRanges)
    }
}
