import FlockCore
import SwiftProtobuf

/// Limits on what the wire accepts, checked before a message is used.
public enum WireLimits {
    /// Largest payload chunk of a model or update stream.
    public static let maximumChunkBytes = 1 << 20
    /// Longest edge id.
    public static let maximumEdgeIdBytes = 128
    /// Largest number of local epochs a plan may ask for.
    public static let maximumEpochs: UInt32 = 1_000
    /// Largest mini-batch a plan may ask for.
    public static let maximumBatchSize: UInt32 = 65_536
    /// Longest reason an edge gives for leaving a round.
    public static let maximumReasonBytes = 512

    /// True for 1-128 bytes of `[A-Za-z0-9._-]`.
    public static func isValidEdgeId(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        return !bytes.isEmpty && bytes.count <= maximumEdgeIdBytes
            && bytes.allSatisfy { (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 46 || $0 == 95 || $0 == 45 }
    }
}

extension Flock_V1_LocalTraining {
    /// The wire form of a local training configuration (plain SGD, as federated edges train).
    public init(_ config: TrainingConfig) {
        self.init()
        epochs = UInt32(clamping: config.epochs)
        batchSize = UInt32(clamping: config.batchSize)
        learningRate = config.learningRate
        proximalMu = config.proximalMu
        clipNorm = config.clipNorm ?? 0
        seed = config.seed
    }

    /// The training configuration this plan asks for, after checking every field.
    /// - Throws: ``CoreError/Code/invalidArgument`` naming the field that is out of range.
    public func trainingConfig() throws(CoreError) -> TrainingConfig {
        guard epochs >= 1, epochs <= WireLimits.maximumEpochs else {
            throw CoreError(.invalidArgument, "plan asks for \(epochs) local epochs (allowed: 1-\(WireLimits.maximumEpochs))")
        }
        guard batchSize >= 1, batchSize <= WireLimits.maximumBatchSize else {
            throw CoreError(.invalidArgument, "plan asks for batch size \(batchSize) (allowed: 1-\(WireLimits.maximumBatchSize))")
        }
        guard clipNorm >= 0, clipNorm.isFinite else { throw CoreError(.invalidArgument, "plan has a bad clipping bound") }
        let config = TrainingConfig(
            epochs: Int(epochs), batchSize: Int(batchSize), learningRate: learningRate,
            clipNorm: clipNorm > 0 ? clipNorm : nil, proximalMu: proximalMu, seed: seed)
        try config.validate()
        return config
    }
}

extension Flock_V1_EvidenceReport {
    /// Rows a report may cover (1e12: far beyond any edge, small enough that sums stay exact in Int64).
    public static let maximumRows: UInt64 = 1_000_000_000_000

    /// The report of `comparison` for `analysis`, comparing the models of hash `served` and `compared`.
    public init(edge: String, session: String, analysis: UInt64, served: String, compared: String, comparison c: PairedComparison) {
        self.init()
        edgeID = edge
        self.session = session
        self.analysis = analysis
        servedHash = served
        comparedHash = compared
        bothRight = UInt64(c.bothRight)
        onlyServedRight = UInt64(c.onlyServedRight)
        onlyComparedRight = UInt64(c.onlyComparedRight)
        bothWrong = UInt64(c.bothWrong)
        unlabelled = UInt64(c.unlabelled)
        agreements = UInt64(c.agreements)
        lossDifferenceSum = c.lossDifferenceSum
        lossDifferenceSquares = c.lossDifferenceSquares
        servedErrors = UInt64(c.servedErrors)
        comparedErrors = UInt64(c.comparedErrors)
        servedLatencyMs = c.servedLatencyMs
        comparedLatencyMs = c.comparedLatencyMs
    }

    /// The comparison it carries, checked: hashes of 64 hex digits, counts that add up and stay below
    /// ``maximumRows``, finite sums, and at most ``PairedComparison/latencyWindow`` finite, non-negative latencies
    /// per model.
    /// - Throws: ``CoreError/Code/invalidArgument`` saying which check failed.
    public func comparison() throws(CoreError) -> PairedComparison {
        func hex64(_ s: String) -> Bool { s.utf8.count == 64 && s.allSatisfy(\.isHexDigit) }
        guard hex64(servedHash), hex64(comparedHash) else { throw CoreError(.invalidArgument, "served_hash and compared_hash are 64 hex digits") }
        let cells = [bothRight, onlyServedRight, onlyComparedRight, bothWrong, unlabelled]
        guard cells.allSatisfy({ $0 <= Self.maximumRows }), cells.reduce(0, +) <= Self.maximumRows else {
            throw CoreError(.invalidArgument, "an evidence report covers at most \(Self.maximumRows) rows")
        }
        let rows = cells.reduce(0, +)
        guard agreements <= rows, servedErrors <= rows, comparedErrors <= rows else {
            throw CoreError(.invalidArgument, "agreements and errors cannot exceed the rows compared")
        }
        guard lossDifferenceSum.isFinite, lossDifferenceSquares.isFinite, lossDifferenceSquares >= 0 else {
            throw CoreError(.invalidArgument, "loss sums must be finite (and the squares non-negative)")
        }
        for samples in [servedLatencyMs, comparedLatencyMs] {
            guard samples.count <= PairedComparison.latencyWindow, samples.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw CoreError(.invalidArgument, "at most \(PairedComparison.latencyWindow) finite, non-negative latencies per model")
            }
        }
        var c = PairedComparison()
        c.bothRight = Int(bothRight)
        c.onlyServedRight = Int(onlyServedRight)
        c.onlyComparedRight = Int(onlyComparedRight)
        c.bothWrong = Int(bothWrong)
        c.unlabelled = Int(unlabelled)
        c.agreements = Int(agreements)
        c.lossDifferenceSum = lossDifferenceSum
        c.lossDifferenceSquares = lossDifferenceSquares
        c.servedErrors = Int(servedErrors)
        c.comparedErrors = Int(comparedErrors)
        c.servedLatencyMs = servedLatencyMs
        c.comparedLatencyMs = comparedLatencyMs
        return c
    }
}
