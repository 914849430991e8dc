import FlockLogging
import Logging

extension Coordinator {
    /// The metadata of an event: the round it is about, the secure-aggregation phase, the model version, and the
    /// edge (an edge id goes only here, never in a message, and is shown at debug level only: ``LogPrivacy``).
    nonisolated static func about(round: Int? = nil, phase: String? = nil, version: Int? = nil, edge: String? = nil) -> Logger.Metadata {
        var metadata = Logger.Metadata()
        if let round { metadata["round"] = .stringConvertible(round) }
        if let phase { metadata["phase"] = .string(phase) }
        if let version { metadata["version"] = .stringConvertible(version) }
        if let edge { metadata[LogPrivacy.edgeKey] = .string(edge) }
        return metadata
    }

    /// Logs an edge's leaving (``leave(id:session:reason:)``).
    func logLeave(id: String, round: Int?, reason: String) {
        let why = reason.isEmpty ? "" : " (\(reason))"
        logger.info(
            round.map { "an edge left round \($0)\(why)" } ?? "an edge left\(why)",
            metadata: Self.about(round: round, edge: id))
    }
}
