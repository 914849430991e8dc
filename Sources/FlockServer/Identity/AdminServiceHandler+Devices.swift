import FlockWire
import Foundation
import GRPCCore

extension AdminServiceHandler {
    /// Issues one-time enrolment tokens.
    public func createEnrolmentTokens(
        request: ServerRequest<Flock_V1_CreateEnrolmentTokensRequest>, context: ServerContext
    ) async throws -> ServerResponse<Flock_V1_CreateEnrolmentTokensResponse> {
        let enrolment = try requireEnrolment()
        let message = request.message
        return ServerResponse(message: try await enrolment.createTokens(count: Int(message.count), lifetime: message.lifetimeSeconds, label: message.label))
    }

    /// Every enrolled device.
    public func listDevices(
        request: ServerRequest<Flock_V1_ListDevicesRequest>, context: ServerContext
    ) async throws -> ServerResponse<Flock_V1_ListDevicesResponse> {
        let enrolment = try requireEnrolment()
        return ServerResponse(message: try enrolment.listDevices())
    }

    /// Revokes a device: refused from its next call on.
    public func revokeDevice(
        request: ServerRequest<Flock_V1_RevokeDeviceRequest>, context: ServerContext
    ) async throws -> ServerResponse<Flock_V1_DeviceInfo> {
        let enrolment = try requireEnrolment()
        let id = request.message.edgeID
        let device = try await enrolment.revoke(edgeId: id)
        await coordinator.forgetRevoked(id)
        return ServerResponse(message: device)
    }

    private func requireEnrolment() throws(RPCError) -> DeviceEnrolment {
        guard let enrolment else {
            throw RPCError(code: .failedPrecondition, message: "this server does not enrol devices (it runs with --enrolment open); restart it without that to use enrolment")
        }
        return enrolment
    }
}
