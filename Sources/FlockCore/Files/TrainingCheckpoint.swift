import FlockCrypto
import Foundation

/// Everything needed to resume a training run exactly: spec, config, completed epochs and steps, the
/// random stream's state, weights, optimizer state, history and early-stopping state, plus the feature
/// scaling the caller applied. Stored in the ``Archive`` format with magic `FLOCKCKP`.
public struct TrainingCheckpoint: Sendable, Equatable {
    /// The 8 magic bytes of checkpoints.
    public static let magic = "FLOCKCKP"
    /// File name of the checkpoint inside a checkpoint folder.
    public static let fileName = "checkpoint.flockckpt"

    /// Model architecture.
    public var spec: ModelSpec
    /// Training configuration.
    public var config: TrainingConfig
    /// Completed epochs.
    public var epoch: Int
    /// Optimizer steps taken.
    public var step: Int
    /// State of the shuffling/dropout generator.
    public var randomState: [UInt64]
    /// Current weights.
    public var parameters: [Float]
    /// Optimizer state.
    public var optimizer: Optimizer
    /// Reports of completed epochs.
    public var history: [EpochReport]
    /// Early stopping: best metric so far (higher is better).
    public var bestMetric: Double?
    /// Early stopping: epoch of the best metric.
    public var bestEpoch: Int?
    /// Early stopping: weights at the best epoch.
    public var bestParameters: [Float]?
    /// FedProx reference weights.
    public var proximalReference: [Float]?
    /// Feature scaling the caller applied to the data (restored on resume).
    public var scaling: FeatureScaling = .none

    private struct Header: Codable {
        var format: String
        var spec: ModelSpec
        var config: TrainingConfig
        var epoch: Int
        var step: Int
        var randomState: [UInt64]
        var optimizerConfig: OptimizerConfig
        var optimizerStep: Int
        var history: [EpochReport]
        var bestMetric: Double?
        var bestEpoch: Int?
        var scaling: FeatureScaling
    }

    /// Writes the checkpoint atomically into `folder` (created if missing) as ``fileName``.
    public func write(toFolder folder: String) throws(CoreError) {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw CoreError(.io, "\(folder): cannot create checkpoint folder")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let header = Header(
            format: "flock-checkpoint", spec: spec, config: config, epoch: epoch, step: step, randomState: randomState,
            optimizerConfig: optimizer.config, optimizerStep: optimizer.step, history: history,
            bestMetric: bestMetric, bestEpoch: bestEpoch, scaling: scaling)
        let data: Data
        do { data = try encoder.encode(header) } catch { throw CoreError(.io, "cannot encode checkpoint header") }
        var sections: [(name: String, values: [Float])] = [("parameters", parameters)]
        sections.append(("optimizer.first", optimizer.firstMoment))
        sections.append(("optimizer.second", optimizer.secondMoment))
        if let bestParameters { sections.append(("best", bestParameters)) }
        if let proximalReference { sections.append(("proximal", proximalReference)) }
        try Archive(header: data, sections: sections).write(path: folder + "/" + TrainingCheckpoint.fileName, magic: TrainingCheckpoint.magic)
    }

    /// Reads the checkpoint in `folder`, or returns nil when there is none.
    /// - Throws: ``CoreError/Code/corruptFile`` when a checkpoint exists but fails its hash or structure checks.
    public static func read(fromFolder folder: String) throws(CoreError) -> TrainingCheckpoint? {
        let path = folder + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let (archive, _) = try Archive.read(path: path, magic: magic, kind: "checkpoint")
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: archive.header) } catch {
            throw CoreError(.corruptFile, "\(path): unreadable checkpoint header")
        }
        guard header.randomState.count == 4, header.randomState.contains(where: { $0 != 0 }) else {
            throw CoreError(.corruptFile, "\(path): bad random state")
        }
        let optimizer = Optimizer(
            restoring: header.optimizerConfig, step: header.optimizerStep,
            firstMoment: try archive.section("optimizer.first", path: path),
            secondMoment: try archive.section("optimizer.second", path: path))
        var checkpoint = TrainingCheckpoint(
            spec: header.spec, config: header.config, epoch: header.epoch, step: header.step, randomState: header.randomState,
            parameters: try archive.section("parameters", path: path), optimizer: optimizer, history: header.history,
            bestMetric: header.bestMetric, bestEpoch: header.bestEpoch,
            bestParameters: archive.sections.first { $0.name == "best" }?.values,
            proximalReference: archive.sections.first { $0.name == "proximal" }?.values)
        checkpoint.scaling = header.scaling
        return checkpoint
    }
}

extension Optimizer {
    /// Restores an optimizer from saved state.
    init(restoring config: OptimizerConfig, step: Int, firstMoment: [Float], secondMoment: [Float]) {
        self.init(config: config, parameterCount: 0)
        self.restore(step: step, firstMoment: firstMoment, secondMoment: secondMoment)
    }
}
