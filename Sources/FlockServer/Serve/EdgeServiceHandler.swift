import FlockCompression
import FlockCore
import Foundation
import FlockWire
import GRPCCore
import SwiftProtobuf

/// The edge service over gRPC: checks every message's shape and size, moves bytes, and hands the rest to
/// the ``Coordinator``. A refused call gets a gRPC status with a message saying what to do, and changes
/// nothing.
public struct EdgeServiceHandler: Flock_V1_EdgeService.SimpleServiceProtocol {
    /// The coordinator every call goes to.
    public let coordinator: Coordinator
    /// Device enrolment, when the server issues device certificates (nil: `--enrolment open`).
    public let enrolment: DeviceEnrolment?

    /// Creates the handler.
    public init(coordinator: Coordinator, enrolment: DeviceEnrolment? = nil) {
        self.coordinator = coordinator
        self.enrolment = enrolment
    }

    /// Joins the federation.
    public func register(request: Flock_V1_RegisterRequest, context: ServerContext) async throws -> Flock_V1_RegisterResponse {
        guard request.softwareVersion.utf8.count <= 64, request.enrolmentToken.utf8.count <= 256 else {
            throw RPCError(code: .invalidArgument, message: "software_version is at most 64 bytes and enrolment_token at most 256")
        }
        let (session, interval) = try await refusing { () async throws(ServeRefusal) in
            try await coordinator.register(id: request.edgeID, examples: request.exampleCount)
        }
        var response = Flock_V1_RegisterResponse()
        response.session = session
        response.heartbeatSeconds = interval
        response.protocolVersion = 1
        response.serverPublicKey = await coordinator.serverPublicKey
        return response
    }

    /// Keeps the session alive and hands out plans.
    public func heartbeat(request: Flock_V1_HeartbeatRequest, context: ServerContext) async throws -> Flock_V1_HeartbeatResponse {
        guard request.reason.utf8.count <= WireLimits.maximumReasonBytes else {
            throw RPCError(code: .invalidArgument, message: "reason is at most \(WireLimits.maximumReasonBytes) bytes")
        }
        var response = try await refusing { () async throws(ServeRefusal) in
            try await coordinator.heartbeat(
                id: request.edgeID, session: request.session, status: request.status, round: request.round, reason: request.reason)
        }
        if let deployment = await coordinator.deployment(for: request.edgeID) { response.deployment = deployment }
        return response
    }

    /// Streams the model file in chunks of at most 1 MiB.
    public func fetchModel(request: Flock_V1_FetchModelRequest, response: RPCWriter<Flock_V1_ModelChunk>, context: ServerContext) async throws {
        try await refusing { () async throws(ServeRefusal) in
            _ = try await coordinator.checkSession(id: request.edgeID, session: request.session)
        }
        guard let (bytes, signature) = await coordinator.model(hash: request.modelHash, deployment: request.deployment) else {
            throw RPCError(code: .notFound, message: "no model with hash \(request.modelHash.prefix(64)); heartbeat for the current plan")
        }
        var offset = 0
        var sent = 0
        repeat {
            let end = min(bytes.count, offset + WireLimits.maximumChunkBytes)
            var chunk = Flock_V1_ModelChunk()
            chunk.offset = UInt64(offset)
            chunk.data = Data(bytes[offset..<end])
            if offset == 0 {
                chunk.totalBytes = UInt64(bytes.count)
                chunk.signature = Data(signature)
            }
            sent += Self.framedSize(chunk)
            try await response.write(chunk)
            offset = end
        } while offset < bytes.count
        if !request.deployment { await coordinator.recordDownload(bytes: sent, hash: request.modelHash) }
    }

    /// Receives one update: a header, then at most `payload_bytes` of chunks of at most 1 MiB.
    public func submitUpdate(
        request: RPCAsyncSequence<Flock_V1_UpdateChunk, any Error>, context: ServerContext
    ) async throws -> Flock_V1_SubmitUpdateResponse {
        // The edge's one upload slot, taken when its header is accepted and freed however the stream ends.
        var slot: String?
        do {
            let response = try await receiveUpdate(request, slot: &slot)
            if let slot { await coordinator.endUpload(id: slot) }
            return response
        } catch {
            if let slot { await coordinator.endUpload(id: slot) }
            throw error
        }
    }

    private func receiveUpdate(
        _ request: RPCAsyncSequence<Flock_V1_UpdateChunk, any Error>, slot: inout String?
    ) async throws -> Flock_V1_SubmitUpdateResponse {
        var header: Flock_V1_UpdateHeader?
        var payload = [UInt8]()
        var expected = 0
        var expectation: Coordinator.UploadExpectation?
        var wireBytes = 0
        for try await message in request {
            wireBytes += Self.framedSize(message)
            switch message.part {
            case .header(let h):
                guard header == nil else { throw RPCError(code: .invalidArgument, message: "an update stream carries one header, first") }
                guard WireLimits.isValidEdgeId(h.edgeID) else { throw RPCError(code: .invalidArgument, message: "malformed edge id") }
                let expecting = try await refusing { () async throws(ServeRefusal) in
                    try await coordinator.checkUpload(
                        id: h.edgeID, session: h.session, round: h.round, codec: h.codec, payloadBytes: h.payloadBytes)
                }
                switch expecting {
                case .masked(let words), .moments(let words): expected = words * 4
                case .plain(_, let bytes, _): expected = bytes
                }
                slot = h.edgeID
                expectation = expecting
                payload.reserveCapacity(expected)
                header = h
            case .data(let data):
                guard header != nil else { throw RPCError(code: .invalidArgument, message: "the update header must come first") }
                guard data.count <= WireLimits.maximumChunkBytes else {
                    throw RPCError(code: .invalidArgument, message: "update chunks are at most \(WireLimits.maximumChunkBytes) bytes")
                }
                guard payload.count + data.count <= expected else {
                    throw RPCError(code: .invalidArgument, message: "update payload is longer than the \(expected) bytes its header announced")
                }
                payload.append(contentsOf: data)
            case nil:
                throw RPCError(code: .invalidArgument, message: "empty update message")
            }
        }
        guard let header else { throw RPCError(code: .invalidArgument, message: "the update stream had no header") }
        guard payload.count == expected else {
            throw RPCError(code: .invalidArgument, message: "update payload has \(payload.count) bytes; its header announced \(expected)")
        }
        guard let expectation else { throw RPCError(code: .invalidArgument, message: "the update stream had no header") }
        if case .masked = expectation {
            // A masked input: uniform-looking words, so nothing to check beyond the length.
            guard header.exampleCount == 0 else {
                throw RPCError(code: .invalidArgument, message: "a masked input carries its weight inside; example_count must be 0")
            }
            let words = LittleEndianFloats.decodeWords(payload)
            try await refusing { () async throws(ServeRefusal) in
                try await coordinator.submitMasked(id: header.edgeID, session: header.session, round: header.round, words: words, bytes: wireBytes)
            }
            return Flock_V1_SubmitUpdateResponse.with { $0.accepted = true }
        }
        if case .moments = expectation {
            let words = LittleEndianFloats.decodeWords(payload)
            try await refusing { () async throws(ServeRefusal) in
                try await coordinator.submitMoments(id: header.edgeID, session: header.session, round: header.round, words: words, bytes: wireBytes)
            }
            return Flock_V1_SubmitUpdateResponse.with { $0.accepted = true }
        }
        guard case .plain(let codec, _, _) = expectation else { throw RPCError(code: .internalError, message: "unexpected upload kind") }
        let delta: [Float]
        if case .f32 = codec {
            delta = LittleEndianFloats.decode(payload)
            if let bad = delta.firstIndex(where: { !$0.isFinite }) {
                throw RPCError(code: .invalidArgument, message: "update value \(bad) is not finite (NaN or infinity); nothing was accepted")
            }
        } else {
            do { delta = try codec.decode(payload) } catch {
                throw RPCError(code: .invalidArgument, message: "\(error.message); nothing was accepted")
            }
        }
        try await refusing { () async throws(ServeRefusal) in
            try await coordinator.submit(
                id: header.edgeID, session: header.session, round: header.round, examples: header.exampleCount,
                delta: delta, bytes: wireBytes)
        }
        var response = Flock_V1_SubmitUpdateResponse()
        response.accepted = true
        return response
    }

    /// Bytes a message takes on the wire inside HTTP/2 DATA frames: its protobuf encoding and gRPC's 5-byte
    /// length prefix.
    static func framedSize(_ message: some SwiftProtobuf.Message) -> Int {
        ((try? message.serializedBytes() as [UInt8])?.count ?? 0) + 5
    }

    /// Secure aggregation, phase 1: an edge's public keys.
    public func advertiseKeys(request: Flock_V1_SecAggKeys, context: ServerContext) async throws -> Flock_V1_SecAggAck {
        let bytes = Self.framedSize(request)
        try await refusing { () async throws(ServeRefusal) in try await coordinator.advertiseKeys(request, bytes: bytes) }
        return Flock_V1_SecAggAck()
    }

    /// Secure aggregation, phase 2: an edge's sealed shares.
    public func shareKeys(request: Flock_V1_SecAggShares, context: ServerContext) async throws -> Flock_V1_SecAggAck {
        let bytes = Self.framedSize(request)
        try await refusing { () async throws(ServeRefusal) in try await coordinator.shareKeys(request, bytes: bytes) }
        return Flock_V1_SecAggAck()
    }

    /// Secure aggregation: what an edge waits for next (a long poll).
    public func awaitSecAgg(request: Flock_V1_SecAggPoll, context: ServerContext) async throws -> Flock_V1_SecAggStep {
        try await refusing { () async throws(ServeRefusal) in
            try await coordinator.awaitSecAgg(id: request.edgeID, session: request.session, round: request.round, phase: request.phase)
        }
    }

    /// Secure aggregation, phase 4: a survivor's revealed shares.
    public func revealShares(request: Flock_V1_SecAggReveal, context: ServerContext) async throws -> Flock_V1_SecAggAck {
        let bytes = Self.framedSize(request)
        try await refusing { () async throws(ServeRefusal) in try await coordinator.revealShares(request, bytes: bytes) }
        return Flock_V1_SecAggAck()
    }

    /// Records a federated evaluation.
    public func reportEvaluation(request: Flock_V1_EvaluationReport, context: ServerContext) async throws -> Flock_V1_EvaluationAck {
        try await refusing { () async throws(ServeRefusal) in
            try await coordinator.reportEvaluation(
                id: request.edgeID, session: request.session, round: request.round, examples: request.examples,
                loss: request.loss, accuracy: request.accuracy)
        }
        return Flock_V1_EvaluationAck()
    }

    /// Records an edge's paired comparison for a shadow or rollback analysis.
    public func reportEvidence(request: Flock_V1_EvidenceReport, context: ServerContext) async throws -> Flock_V1_EvidenceAck {
        let comparison: PairedComparison
        do { comparison = try request.comparison() } catch {
            throw RPCError(code: .invalidArgument, message: "\(error.message); nothing was recorded")
        }
        guard request.analysis > 0, request.analysis <= UInt64(Int64.max) else {
            throw RPCError(code: .invalidArgument, message: "analysis must be the positive number the deployment named")
        }
        let decision = try await refusing { () async throws(ServeRefusal) in
            try await coordinator.reportEvidence(
                id: request.edgeID, session: request.session, analysis: Int64(request.analysis), served: request.servedHash,
                compared: request.comparedHash, comparison: comparison)
        }
        var ack = Flock_V1_EvidenceAck()
        ack.decision = decision ?? ""
        return ack
    }
}

/// Runs `body`, turning a ``ServeRefusal`` into the gRPC status that matches it.
func refusing<T: Sendable>(_ body: () async throws(ServeRefusal) -> T) async throws(RPCError) -> T {
    do { return try await body() } catch {
        let code: RPCError.Code
        switch error.kind {
        case .invalidArgument: code = .invalidArgument
        case .unauthenticated: code = .unauthenticated
        case .failedPrecondition: code = .failedPrecondition
        case .alreadyExists: code = .alreadyExists
        case .notFound: code = .notFound
        case .unavailable: code = .unavailable
        case .resourceExhausted: code = .resourceExhausted
        case .permissionDenied: code = .permissionDenied
        }
        throw RPCError(code: code, message: error.message)
    }
}
