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
