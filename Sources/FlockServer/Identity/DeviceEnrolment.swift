import FlockCore
import FlockWire
import Foundation
import GRPCCore
import SwiftASN1
import X509

/// Device enrolment and revocation, as the server's two services call them: a one-time token and a certificate
/// request for a key the device made buy a short-lived device certificate from the server's CA whose subject
/// alternative name carries the edge id; the device renews it over mutual TLS before it expires; the operator
/// issues tokens, lists devices and revokes them. Every enrolment, renewal, token issue and revocation is an audit
/// event.
public final class DeviceEnrolment: Sendable {
    /// Device certificates live this long unless configured otherwise; edges renew them after two thirds.
    public static let defaultCertificateLifetime: Duration = .seconds(30 * 86_400)
    /// A certificate request is at most this long.
    public static let maximumRequestBytes = 16 << 10

    /// The enrolled devices and the enrolment tokens.
    public let directory: DeviceDirectory
    /// The CA that signs device certificates (the one the server's TLS trusts for client certificates).
    public let authority: CertificateAuthority
    /// How long a device certificate is valid.
    public let certificateLifetime: Duration
    private let audit: AuditLog

    /// Enrolment over `directory`, signing with `authority`, recording in `audit`.
    public init(directory: DeviceDirectory, authority: CertificateAuthority, certificateLifetime: Duration = defaultCertificateLifetime, audit: AuditLog) {
        self.directory = directory
        self.authority = authority
        self.certificateLifetime = certificateLifetime
        self.audit = audit
    }

    /// Enrols a device. Nothing is recorded and the token stays unused when the request is refused.
    /// - Throws: ``ServeRefusal``: `invalidArgument` for a malformed request, `unauthenticated` for an unknown,
    ///   used or expired token, `alreadyExists` for an id that another device holds.
    public func enrol(_ request: Flock_V1_EnrolRequest, now: Date = Date()) throws(ServeRefusal) -> Flock_V1_EnrolResponse {
        guard request.token.utf8.count <= 256 else { throw ServeRefusal(.invalidArgument, "an enrolment token is at most 256 bytes") }
        guard WireLimits.isValidEdgeId(request.edgeID) else {
            throw ServeRefusal(.invalidArgument, "edge ids are 1-\(WireLimits.maximumEdgeIdBytes) characters of A-Z, a-z, 0-9, '.', '_' and '-'")
        }
        let csr = try Self.parse(request.certificateRequest)
        let certificate = try issue(csr, edgeId: request.edgeID, now: now)
        let outcome = Result { () throws(ServeRefusal) in
            try directory.enrol(
                token: request.token, edgeId: request.edgeID, keyHash: Self.keyHash(csr.publicKey),
                serial: certificate.serialNumber.description, certificateExpires: certificate.notValidAfter, now: now)
        }
        let actor = AuditEvent.Actor.device(request.edgeID, label: (try? outcome.get())?.label ?? "")
        var arguments = ["token": DeviceDirectory.tokenId(of: request.token)]
        switch outcome {
        case .success:
            arguments["serial"] = certificate.serialNumber.description
            try? audit.record(AuditEvent(actor: actor, action: "devices.enrol", arguments: arguments, outcome: .ok, detail: "certificate until \(certificate.notValidAfter)"))
            return try response(certificate, edgeId: request.edgeID)
        case .failure(let refusal):
            // A token this server never issued is anyone's guess: not recorded, so that guesses cannot fill the disk.
            if directory.issued(token: request.token) {
                try? audit.record(AuditEvent(actor: actor, action: "devices.enrol", arguments: arguments, outcome: .refused, detail: refusal.message))
            }
            throw refusal
        }
    }

    /// Issues a new certificate to the device that presented `presented` (the edge id of the client certificate of
    /// the call, nil without one) for the key in `request`.
    /// - Throws: ``ServeRefusal``: `unauthenticated` without a device certificate, `permissionDenied` for a request
    ///   naming another edge or a revoked device, `invalidArgument` for a malformed request.
    public func renew(_ request: Flock_V1_RenewCertificateRequest, presented: String?, now: Date = Date()) throws(ServeRefusal) -> Flock_V1_EnrolResponse {
        guard let presented else {
            throw ServeRefusal(.unauthenticated, "renewing needs the current device certificate over mutual TLS; if it has expired, enrol again with a new token")
        }
        guard presented == request.edgeID else {
            throw ServeRefusal(.permissionDenied, "the certificate presented is edge \(presented)'s; a device renews only its own certificate")
        }
        let csr = try Self.parse(request.certificateRequest)
        let certificate = try issue(csr, edgeId: presented, now: now)
        try directory.renew(edgeId: presented, serial: certificate.serialNumber.description, certificateExpires: certificate.notValidAfter)
        try? audit.record(AuditEvent(
            actor: .device(presented), action: "devices.renew", arguments: ["serial": certificate.serialNumber.description], outcome: .ok,
            detail: "certificate until \(certificate.notValidAfter)"))
        return try response(certificate, edgeId: presented)
    }

    /// Issues one-time tokens (an audited operator action).
    public func createTokens(count: Int, lifetime: Double, label: String) async throws -> Flock_V1_CreateEnrolmentTokensResponse {
        try await audit.recording(
            "enrol.create", arguments: ["count": String(count), "lifetime_seconds": String(Int(lifetime)), "label": label],
            detail: { "token ids \($0.tokens.map(\.id).joined(separator: ","))" }
        ) {
            let tokens: [IssuedEnrolmentToken]
            do throws(CoreError) { tokens = try directory.createTokens(count: count, lifetime: lifetime, label: label) } catch {
                throw RPCError(code: error.code == .invalidArgument ? .invalidArgument : .unavailable, message: error.message)
            }
            var response = Flock_V1_CreateEnrolmentTokensResponse()
            response.tokens = tokens.map { token in
                var wire = Flock_V1_EnrolmentToken()
                wire.id = token.id
                wire.token = token.token
                wire.expiresUnix = Int64(token.expires.timeIntervalSince1970)
                return wire
            }
            return response
        }
    }

    /// Every enrolled device.
    public func listDevices() throws(RPCError) -> Flock_V1_ListDevicesResponse {
        var response = Flock_V1_ListDevicesResponse()
        do { response.devices = try directory.devices().map(Flock_V1_DeviceInfo.init) } catch {
            throw RPCError(code: .unavailable, message: error.message)
        }
        return response
    }

    /// Revokes a device (an audited operator action).
    public func revoke(edgeId: String) async throws -> Flock_V1_DeviceInfo {
        try await audit.recording("devices.revoke", arguments: ["edge_id": edgeId], detail: { _ in "revoked" }) {
            do throws(CoreError) { return Flock_V1_DeviceInfo(try directory.revoke(edgeId: edgeId)) } catch {
                throw RPCError(code: error.code == .invalidArgument ? .notFound : .unavailable, message: error.message)
            }
        }
    }

    private func issue(_ csr: CertificateSigningRequest, edgeId: String, now: Date) throws(ServeRefusal) -> Certificate {
        do {
            return try authority.issueDeviceCertificate(for: csr, edgeId: edgeId, validFor: certificateLifetime, now: now)
        } catch {
            throw ServeRefusal(.invalidArgument, error.message)
        }
    }

    private func response(_ certificate: Certificate, edgeId: String) throws(ServeRefusal) -> Flock_V1_EnrolResponse {
        var response = Flock_V1_EnrolResponse()
        response.edgeID = edgeId
        do {
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            response.certificate = Data(serializer.serializedBytes)
            var ca = DER.Serializer()
            try ca.serialize(authority.certificate)
            response.caCertificate = Data(ca.serializedBytes)
        } catch {
            throw ServeRefusal(.unavailable, "the server could not encode the certificate (\(error)); try again")
        }
        response.expiresUnix = Int64(certificate.notValidAfter.timeIntervalSince1970)
        return response
    }

    private static func parse(_ bytes: Data) throws(ServeRefusal) -> CertificateSigningRequest {
        guard !bytes.isEmpty, bytes.count <= maximumRequestBytes else {
            throw ServeRefusal(.invalidArgument, "certificate_request must be 1-\(maximumRequestBytes) bytes of DER")
        }
        do { return try CertificateSigningRequest(derEncoded: Array(bytes)) } catch {
            throw ServeRefusal(.invalidArgument, "certificate_request is not a PKCS#10 request in DER; flock-edge enrol makes one")
        }
    }

    /// Hex of the key's subject key identifier (SHA-1 of the key, RFC 5280 §4.2.1.2): which key a device enrolled.
    static func keyHash(_ key: Certificate.PublicKey) -> String {
        SubjectKeyIdentifier(hash: key).keyIdentifier.map { String(format: "%02x", $0) }.joined()
    }
}

extension Flock_V1_DeviceInfo {
    /// The wire form of an enrolled device.
    public init(_ device: EnrolledDevice) {
        self.init()
        edgeID = device.edgeId
        label = device.label
        tokenID = device.tokenId
        enrolledUnix = Int64(device.enrolledAt.timeIntervalSince1970)
        certificateSerial = device.certificateSerial
        certificateExpiresUnix = Int64(device.certificateExpires.timeIntervalSince1970)
        revokedUnix = device.revokedAt.map { Int64($0.timeIntervalSince1970) } ?? 0
    }
}
