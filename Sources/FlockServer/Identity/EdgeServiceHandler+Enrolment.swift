import FlockWire
import GRPCCore

extension EdgeServiceHandler {
    /// Enrols a device: a one-time token and a certificate request buy a device certificate.
    public func enrol(request: Flock_V1_EnrolRequest, context: ServerContext) async throws -> Flock_V1_EnrolResponse {
        let enrolment = try requireEnrolment()
        return try await refusing { () async throws(ServeRefusal) in try enrolment.enrol(request) }
    }

    /// Issues a new certificate for the identity of the one the call presents.
    public func renewCertificate(request: Flock_V1_RenewCertificateRequest, context: ServerContext) async throws -> Flock_V1_EnrolResponse {
        let enrolment = try requireEnrolment()
        return try await refusing { () async throws(ServeRefusal) in
            try enrolment.renew(request, presented: DeviceIdentityCheck.presentedEdgeId(context))
        }
    }

    private func requireEnrolment() throws(RPCError) -> DeviceEnrolment {
        guard let enrolment else {
            throw RPCError(code: .failedPrecondition, message: "this server does not enrol devices (it runs with --enrolment open): run flock-edge run without enrolling")
        }
        return enrolment
    }
}
