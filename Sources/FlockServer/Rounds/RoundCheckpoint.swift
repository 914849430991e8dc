import FlockCompression
import FlockCore
import Foundation

/// The server's state after a completed round, written atomically after every round so that a server
/// killed at any moment (kill -9 included) resumes from the last completed round and loses nothing
/// it had accepted as complete.
///
/// Stored in FlockCore's verified ``Archive`` format (magic `FLOCKSRV`): a JSON header with the round
/// counter, the strategy, the model spec, the selection generator's state, the round history and the codec
/// state's counters, and Float32 sections for the global weights, the server optimizer's moments and the
/// codec state (``CodecState``).
public struct RoundCheckpoint: Sendable, Equatable {
    /// The 8 magic bytes.
    public static let magic = "FLOCKSRV"
    /// File name inside the state folder.
    public static let fileName = "rounds.flocksrv"

    /// Global weights, optimizer moments and the completed-round counter.
    public var model: GlobalModelState
    /// The global model's architecture.
    public var spec: ModelSpec
    /// State of the generator that selects edges each round.
    public var selectionState: [UInt64]
    /// One JSON object per completed round (whatever the runner records), oldest first.
    public var history: [String]
    /// The codec's state between rounds, as ``CodecState/sections`` and ``CodecState/counters``.
    public var codecSections: [String: [Float]]
    /// See ``codecSections``.
    public var codecCounters: [String: Int]
    /// The feature scaling fitted by a statistics round (nil: the configured scaling).
    public var scaling: FeatureScaling?

    /// Creates a checkpoint.
    public init(model: GlobalModelState, spec: ModelSpec, selectionState: [UInt64], history: [String], codec: CodecState = CodecState()) {
        self.model = model
        self.spec = spec
        self.selectionState = selectionState
        self.history = history
        codecSections = codec.sections
        codecCounters = codec.counters
    }

    /// The codec state saved for a run of `spec` over updates of `length` values.
    /// - Throws: ``CoreError/Code/corruptFile`` when it does not fit the codec.
    public func codecState(spec codec: CodecSpec, length: Int) throws(CoreError) -> CodecState {
        do { return try CodecState(sections: codecSections, counters: codecCounters, spec: codec, length: length) } catch {
            throw CoreError(.corruptFile, "the round checkpoint's codec state: \(error.message)")
        }
    }

    private struct Header: Codable {
        var format: String
        var round: Int
        var strategy: AggregationStrategy
        var spec: ModelSpec
        var selectionState: [UInt64]
        var history: [String]
        /// Absent in checkpoints written before codec state was saved.
        var codecCounters: [String: Int]?
        /// Absent unless a statistics round fitted the scaling.
        var scaling: FeatureScaling?
    }

    /// Writes the checkpoint atomically into `folder` (created if missing).
    public func write(toFolder folder: String) throws(CoreError) {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw CoreError(.io, "\(folder): cannot create the state folder")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let header: Data
        do {
            header = try encoder.encode(Header(
                format: "flock-rounds", round: model.round, strategy: model.strategy, spec: spec,
                selectionState: selectionState, history: history, codecCounters: codecCounters, scaling: scaling))
        } catch {
            throw CoreError(.io, "cannot encode the round checkpoint")
        }
        try Archive(header: header, sections: [
            ("weights", model.weights), ("first", model.firstMoment), ("second", model.secondMoment),
        ] + codecSections.sorted { $0.key < $1.key }.map { (name: $0.key, values: $0.value) }).write(path: folder + "/" + Self.fileName, magic: Self.magic)
    }

    /// Reads the checkpoint in `folder`, or nil when there is none.
    /// - Throws: ``CoreError/Code/corruptFile`` when one exists but fails its checks.
    public static func read(fromFolder folder: String) throws(CoreError) -> RoundCheckpoint? {
        let path = folder + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let (archive, _) = try Archive.read(path: path, magic: magic, kind: "round checkpoint")
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: archive.header) } catch {
            throw CoreError(.corruptFile, "\(path): unreadable round checkpoint header")
        }
        guard header.selectionState.count == 4, header.selectionState.contains(where: { $0 != 0 }), header.round >= 0 else {
            throw CoreError(.corruptFile, "\(path): bad round checkpoint state")
        }
        let model = try GlobalModelState(
            restoring: header.strategy, round: header.round, weights: try archive.section("weights", path: path),
            firstMoment: try archive.section("first", path: path), secondMoment: try archive.section("second", path: path))
        var checkpoint = RoundCheckpoint(model: model, spec: header.spec, selectionState: header.selectionState, history: header.history)
        checkpoint.codecSections = Dictionary(archive.sections.filter { CodecState.owns($0.name) }.map { ($0.name, $0.values) }) { first, _ in first }
        checkpoint.codecCounters = header.codecCounters ?? [:]
        checkpoint.scaling = header.scaling
        return checkpoint
    }
}

extension GlobalModelState {
    /// Restores saved state, checking that the moments fit the strategy and the weights.
    /// - Throws: ``CoreError/Code/corruptFile`` when they do not.
    public init(restoring strategy: AggregationStrategy, round: Int, weights: [Float], firstMoment: [Float], secondMoment: [Float]) throws(CoreError) {
        self.init(strategy: strategy, weights: weights)
        guard firstMoment.count == self.firstMoment.count, secondMoment.count == self.secondMoment.count else {
            throw CoreError(.corruptFile, "the saved optimizer state does not match strategy \(strategy)")
        }
        restore(round: round, firstMoment: firstMoment, secondMoment: secondMoment)
    }
}
