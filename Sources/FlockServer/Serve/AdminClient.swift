import FlockCore
import FlockWire
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// The client side of the admin service, for `flock-server admin`: finds the server and the token, makes
/// one call, and renders the answer as a table or JSON.
public enum AdminClient {
    /// The server to talk to: `explicit`, else the address the server wrote into `DATA_DIR/serve.address`,
    /// else 127.0.0.1:7070.
    public static func serverAddress(explicit: String?, dataDirectory: String) throws(CoreError) -> ServerAddress {
        if let explicit { return try ServerAddress(parsing: explicit) }
        if let bytes = try? FileIO.read(dataDirectory + "/" + ServeRuntime.addressFileName) {
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if let address = try? ServerAddress(parsing: text) { return address }
        }
        return ServerAddress(host: "127.0.0.1", port: 7070)
    }

    /// The admin token: `explicit`, else the first line of `file`, else `FLOCK_ADMIN_TOKEN`, else
    /// `DATA_DIR/admin.token`.
    /// - Throws: ``CoreError/Code/fileNotFound`` saying where to find it; `file`'s own error when it is named but
    ///   cannot be read or is empty.
    public static func token(explicit: String?, file: String? = nil, dataDirectory: String) throws(CoreError) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let file {
            let text = String(decoding: try FileIO.read(file), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty else { throw CoreError(.invalidData, "\(file): empty; it should hold the admin token") }
            return text
        }
        if let fromEnvironment = ProcessInfo.processInfo.environment["FLOCK_ADMIN_TOKEN"], !fromEnvironment.isEmpty { return fromEnvironment }
        let path = dataDirectory + "/" + AdminToken.tokenFileName
        guard let bytes = try? FileIO.read(path) else {
            throw CoreError(
                .fileNotFound,
                "no admin token: set FLOCK_ADMIN_TOKEN, pass --token-file, or point --data-dir at the server's data directory (\(path) not readable)")
        }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Connects to `server` (over TLS as `tls` says; nil: plaintext), runs `body` with the admin client and the
    /// call metadata, and closes.
    public static func with<T: Sendable>(
        server: ServerAddress, token: String, tls: ClientTLS? = nil,
        _ body: @escaping @Sendable (Flock_V1_AdminService.Client<ServerClientTransport>, Metadata, CallOptions) async throws -> T
    ) async throws -> T {
        let transport = try server.clientTransport(tls: tls)
        return try await withGRPCClient(transport: transport) { client in
            var options = CallOptions.defaults
            options.timeout = .seconds(15)
            options.waitForReady = false
            return try await body(Flock_V1_AdminService.Client(wrapping: client), ["authorization": "Bearer \(token)"], options)
        }
    }

    /// `admin status` as lines of `key value`.
    public static func render(_ status: Flock_V1_StatusResponse) -> String {
        TextTable(header: ["", ""], rows: [
            ["state", status.state], ["completed rounds", String(status.completedRounds)],
            ["current round", status.currentRound == 0 ? "-" : String(status.currentRound)],
            ["connected edges", String(status.connectedEdges)], ["model", status.model], ["strategy", status.strategy],
            ["accuracy", status.completedRounds == 0 ? "-" : String(format: "%.4f", status.accuracy)],
            ["model hash", String(status.modelHash.prefix(16))],
        ]).render().split(separator: "\n").dropFirst().joined(separator: "\n")
    }

    /// `admin status --json`.
    public static func json(_ status: Flock_V1_StatusResponse) -> String {
        JSONOutput.line(StatusJSON(
            state: status.state, completedRounds: status.completedRounds, currentRound: status.currentRound,
            connectedEdges: status.connectedEdges, model: status.model, strategy: status.strategy,
            accuracy: status.completedRounds == 0 ? nil : status.accuracy, modelHash: status.modelHash))
    }

    /// `admin clients` as a table.
    public static func render(_ clients: [Flock_V1_ClientInfo]) -> String {
        TextTable(
            header: ["edge", "state", "last seen s", "rounds", "examples"],
            rows: clients.map { [$0.edgeID, $0.state, String(format: "%.1f", $0.lastSeenSecondsAgo), String($0.roundsParticipated), String($0.exampleCount)] }
        ).render()
    }

    /// `admin clients --json`.
    public static func json(_ clients: [Flock_V1_ClientInfo]) -> String {
        JSONOutput.line(clients.map {
            ClientJSON(edgeId: $0.edgeID, state: $0.state, lastSeenSecondsAgo: $0.lastSeenSecondsAgo, rounds: $0.roundsParticipated, examples: $0.exampleCount)
        })
    }

    /// `admin rounds` as a table.
    public static func render(_ rounds: [Flock_V1_RoundSummary]) -> String {
        TextTable(
            header: [
                "round", "state", "selected", "participants", "dropped", "accuracy", "fed. accuracy", "seconds", "upload MB", "download MB",
                "up KB/edge", "down KB/edge", "secagg drops", "secagg phase s",
            ],
            rows: rounds.map { r in
                [String(r.round), r.kind.isEmpty ? r.state : "\(r.state) (\(r.kind))", String(r.selected), String(r.participants), String(r.dropped),
                 r.hasAccuracy ? String(format: "%.4f", r.accuracy) : "-",
                 r.hasFederatedAccuracy ? String(format: "%.4f", r.federatedAccuracy) : "-",
                 String(format: "%.3f", r.seconds), String(format: "%.2f", Double(r.uploadBytes) / 1e6),
                 String(format: "%.2f", Double(r.downloadBytes) / 1e6),
                 r.participants > 0 ? String(format: "%.1f", Double(r.uploadBytes) / Double(r.participants) / 1e3) : "-",
                 r.selected > 0 ? String(format: "%.1f", Double(r.downloadBytes) / Double(r.selected) / 1e3) : "-"] + securePhases(r)
            }
        ).render()
    }

    /// The secure-aggregation columns of a round: drops and seconds per phase, `a/b/c/d`, or `-` for a
    /// round without secure aggregation.
    private static func securePhases(_ r: Flock_V1_RoundSummary) -> [String] {
        guard !r.secureDroppedPerPhase.isEmpty || !r.securePhaseSeconds.isEmpty else { return ["-", "-"] }
        return [
            r.secureDroppedPerPhase.map(String.init).joined(separator: "/"),
            r.securePhaseSeconds.map { String(format: "%.2f", $0) }.joined(separator: "/"),
        ]
    }

    /// `admin rounds --json`: one object per round.
    public static func json(_ rounds: [Flock_V1_RoundSummary]) -> String {
        JSONOutput.line(rounds.map(RoundJSON.init))
    }

    /// `admin round show N --json`.
    public static func json(_ round: Flock_V1_RoundSummary) -> String { JSONOutput.line(RoundJSON(round)) }

    private struct StatusJSON: Encodable {
        var state: String
        var completedRounds: UInt64
        var currentRound: UInt64
        var connectedEdges: UInt32
        var model: String
        var strategy: String
        var accuracy: Double?
        var modelHash: String
        enum CodingKeys: String, CodingKey {
            case state, model, strategy, accuracy
            case completedRounds = "completed_rounds", currentRound = "current_round", connectedEdges = "connected_edges", modelHash = "model_hash"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(state, forKey: .state)
            try c.encode(completedRounds, forKey: .completedRounds)
            try c.encode(currentRound, forKey: .currentRound)
            try c.encode(connectedEdges, forKey: .connectedEdges)
            try c.encode(model, forKey: .model)
            try c.encode(strategy, forKey: .strategy)
            try c.encode(accuracy, forKey: .accuracy)
            try c.encode(modelHash, forKey: .modelHash)
        }
    }

    private struct ClientJSON: Encodable {
        var edgeId: String
        var state: String
        var lastSeenSecondsAgo: Double
        var rounds: UInt64
        var examples: UInt64
        enum CodingKeys: String, CodingKey {
            case edgeId = "edge_id", state, lastSeenSecondsAgo = "last_seen_seconds_ago", rounds, examples
        }
    }

    private struct RoundJSON: Encodable {
        var round: UInt64
        var state: String
        var selected: UInt32
        var participants: UInt32
        var dropped: UInt32
        var accuracy: Double?
        var loss: Double?
        var federatedAccuracy: Double?
        var federatedExamples: UInt64
        var seconds: Double
        var uploadBytes: UInt64
        var downloadBytes: UInt64
        var modelVersion: UInt64
        var reason: String?
        var kind: String?
        var secureAggregation: SecurePhasesJSON?
        enum CodingKeys: String, CodingKey {
            case round, state, selected, participants, dropped, accuracy, loss, seconds, reason, kind
            case secureAggregation = "secure_aggregation"
            case federatedAccuracy = "federated_accuracy", federatedExamples = "federated_examples"
            case uploadBytes = "upload_bytes", downloadBytes = "download_bytes", modelVersion = "model_version"
        }
        init(_ r: Flock_V1_RoundSummary) {
            round = r.round
            state = r.state
            selected = r.selected
            participants = r.participants
            dropped = r.dropped
            accuracy = r.hasAccuracy ? r.accuracy : nil
            loss = r.hasLoss ? r.loss : nil
            federatedAccuracy = r.hasFederatedAccuracy ? r.federatedAccuracy : nil
            federatedExamples = r.federatedExamples
            seconds = r.seconds
            uploadBytes = r.uploadBytes
            downloadBytes = r.downloadBytes
            modelVersion = r.modelVersion
            reason = r.reason.isEmpty ? nil : r.reason
            kind = r.kind.isEmpty ? nil : r.kind
            if !r.secureDroppedPerPhase.isEmpty || !r.securePhaseSeconds.isEmpty {
                secureAggregation = SecurePhasesJSON(droppedPerPhase: r.secureDroppedPerPhase, phaseSeconds: r.securePhaseSeconds)
            }
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(round, forKey: .round)
            try c.encode(state, forKey: .state)
            try c.encode(selected, forKey: .selected)
            try c.encode(participants, forKey: .participants)
            try c.encode(dropped, forKey: .dropped)
            try c.encode(accuracy, forKey: .accuracy)
            try c.encode(loss, forKey: .loss)
            try c.encode(federatedAccuracy, forKey: .federatedAccuracy)
            try c.encode(federatedExamples, forKey: .federatedExamples)
            try c.encode(seconds, forKey: .seconds)
            try c.encode(uploadBytes, forKey: .uploadBytes)
            try c.encode(downloadBytes, forKey: .downloadBytes)
            try c.encode(modelVersion, forKey: .modelVersion)
            try c.encodeIfPresent(reason, forKey: .reason)
            try c.encodeIfPresent(kind, forKey: .kind)
            try c.encode(secureAggregation, forKey: .secureAggregation)
        }
    }

    /// A round's secure-aggregation phases, under the keys `simulate --json` uses.
    private struct SecurePhasesJSON: Encodable {
        var droppedPerPhase: [UInt32]
        var phaseSeconds: [Double]
        enum CodingKeys: String, CodingKey {
            case droppedPerPhase = "dropped_per_phase", phaseSeconds = "phase_seconds"
        }
    }
}
