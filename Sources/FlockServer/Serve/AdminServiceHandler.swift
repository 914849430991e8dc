import FlockCore
import FlockWire
import GRPCCore

/// The admin service over gRPC. Calls are authorised before they get here, by ``AdminAuthorization`` (token and
/// role, in one table); the caller is ``AdminCaller/current``. Every operator action is recorded in the audit log.
public struct AdminServiceHandler: Flock_V1_AdminService.ServiceProtocol {
    /// The coordinator every call goes to.
    public let coordinator: Coordinator
    /// The admin tokens (``AdminAuthorization`` checks them; the token methods manage them).
    public let tokens: AdminTokenStore
    /// Where operator actions are recorded.
    public let audit: AuditLog
    /// Device enrolment, when the server issues device certificates (nil: `--enrolment open`).
    public var enrolment: DeviceEnrolment?

    /// Creates the handler.
    public init(coordinator: Coordinator, tokens: AdminTokenStore, audit: AuditLog) {
        self.coordinator = coordinator
        self.tokens = tokens
        self.audit = audit
    }

    /// The server's state.
    public func status(request: ServerRequest<Flock_V1_StatusRequest>, context: ServerContext) async throws -> ServerResponse<Flock_V1_StatusResponse> {
        return ServerResponse(message: await coordinator.status())
    }

    /// Every registered edge.
    public func listClients(
        request: ServerRequest<Flock_V1_ListClientsRequest>, context: ServerContext
    ) async throws -> ServerResponse<Flock_V1_ListClientsResponse> {
        var response = Flock_V1_ListClientsResponse()
        response.clients = await coordinator.clients()
        return ServerResponse(message: response)
    }

    /// Every round.
    public func listRounds(
        request: ServerRequest<Flock_V1_ListRoundsRequest>, context: ServerContext
    ) async throws -> ServerResponse<Flock_V1_ListRoundsResponse> {
        var response = Flock_V1_ListRoundsResponse()
        response.rounds = await coordinator.rounds().map(Flock_V1_RoundSummary.init)
        return ServerResponse(message: response)
    }

    /// One round.
    public func showRound(request: ServerRequest<Flock_V1_ShowRoundRequest>, context: ServerContext) async throws -> ServerResponse<Flock_V1_RoundSummary> {
        guard let record = await coordinator.rounds().first(where: { UInt64($0.round) == request.message.round }) else {
            throw RPCError(code: .notFound, message: "no round \(request.message.round); `flock-server admin rounds` lists them")
        }
        return ServerResponse(message: Flock_V1_RoundSummary(record))
    }

    /// start, pause, resume, stop.
    public func control(request: ServerRequest<Flock_V1_ControlRequest>, context: ServerContext) async throws -> ServerResponse<Flock_V1_StatusResponse> {
        let command = request.message.command
        let status = try await audit.recording(command.auditName, detail: { $0.state }) {
            try await refusing { () async throws(ServeRefusal) in try await coordinator.control(command) }
        }
        return ServerResponse(message: status)
    }

    /// promote, rollback, pin, unpin.
    public func changeProduction(
        request: ServerRequest<Flock_V1_ProductionChange>, context: ServerContext
    ) async throws -> ServerResponse<Flock_V1_ProductionChangeResponse> {
        let change = request.message
        let (message, production) = try await audit.recording(change.action.auditName, arguments: change.auditArguments, detail: { $0.0 }) {
            try await refusing { () async throws(ServeRefusal) in try await coordinator.changeProduction(change) }
        }
        var response = Flock_V1_ProductionChangeResponse()
        response.message = message
        response.productionVersion = UInt64(production ?? 0)
        return ServerResponse(message: response)
    }
}

extension Flock_V1_RoundSummary {
    /// The wire form of a round record.
    public init(_ record: RoundRecord) {
        self.init()
        round = UInt64(record.round)
        state = record.state
        selected = UInt32(clamping: record.selected)
        participants = UInt32(clamping: record.participants)
        dropped = UInt32(clamping: record.dropped)
        if let a = record.accuracy { accuracy = a }
        if let l = record.loss { loss = l }
        if let a = record.federatedAccuracy { federatedAccuracy = a }
        if let l = record.federatedLoss { federatedLoss = l }
        federatedExamples = UInt64(record.federatedExamples)
        seconds = record.seconds
        uploadBytes = UInt64(record.uploadBytes)
        downloadBytes = UInt64(record.downloadBytes)
        modelVersion = UInt64(record.modelVersion)
        reason = record.reason ?? ""
        secureDroppedPerPhase = (record.secureDroppedPerPhase ?? []).map { UInt32(clamping: $0) }
        securePhaseSeconds = record.securePhaseSeconds ?? []
        kind = record.kind ?? ""
    }
}
