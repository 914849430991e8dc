import Crypto
import FlockCore
import FlockWire
import Foundation
import GRPCCore
import SwiftASN1
import X509

/// The device's identity, kept in its state folder under `identity/`: a P-256 key made on the device
/// (`device.key`, mode 0600; it never leaves the device), the device certificate the server's CA issued for it
/// (`device.pem`), and that CA's certificate (`ca.pem`), which the edge then trusts for the server.
///
/// The key is written before the certificate request goes out, so a device that crashes during enrolment asks
/// again with the same key and token, and the server issues again.
public struct DeviceIdentity: Sendable {
    /// The folder in the state folder.
    public static let folderName = "identity"

    /// The edge id the certificate carries.
    public let edgeId: String
    /// The device certificate.
    public let certificate: Certificate
    /// The device's key.
    public let privateKey: P256.Signing.PrivateKey
    /// The CA that issued the certificate (and the server's).
    public let authority: Certificate

    /// Paths of the three files in `stateDirectory`.
    public struct Paths: Sendable {
        /// The folder.
        public let folder: String
        /// The key, PEM (PKCS#8), 0600.
        public var key: String { folder + "/device.key" }
        /// The certificate, PEM.
        public var certificate: String { folder + "/device.pem" }
        /// The CA's certificate, PEM.
        public var authority: String { folder + "/ca.pem" }

        /// The paths in the state folder `stateDirectory`.
        public init(stateDirectory: String) { folder = stateDirectory + "/" + DeviceIdentity.folderName }
    }

    /// The identity stored in `stateDirectory`, or nil when the device has not enrolled.
    /// - Throws: ``CoreError`` (`corruptFile`) when the files are there but unreadable or do not belong together.
    public static func load(stateDirectory: String) throws(CoreError) -> DeviceIdentity? {
        let paths = Paths(stateDirectory: stateDirectory)
        guard FileManager.default.fileExists(atPath: paths.certificate) else { return nil }
        let certificate = try readCertificate(paths.certificate)
        let authority = try readCertificate(paths.authority)
        let key = try readKey(paths.key)
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw CoreError(.corruptFile, "\(paths.certificate) is not for the key in \(paths.key); enrol again (flock-edge enrol)")
        }
        guard let edgeId = edgeId(of: certificate) else {
            throw CoreError(.corruptFile, "\(paths.certificate) is not a Flock device certificate; enrol again (flock-edge enrol)")
        }
        return DeviceIdentity(edgeId: edgeId, certificate: certificate, privateKey: key, authority: authority)
    }

    /// True when `stateDirectory` holds a device certificate (the device enrolled).
    public static func isEnrolled(stateDirectory: String) -> Bool {
        FileManager.default.fileExists(atPath: Paths(stateDirectory: stateDirectory).certificate)
    }

    /// The device's key in `stateDirectory`, made and stored (0600) first if there is none yet.
    public static func loadOrCreateKey(stateDirectory: String) throws(CoreError) -> P256.Signing.PrivateKey {
        let paths = Paths(stateDirectory: stateDirectory)
        if FileManager.default.fileExists(atPath: paths.key) { return try readKey(paths.key) }
        try FileIO.createPrivateDirectory(paths.folder)
        let key = P256.Signing.PrivateKey()
        try FileIO.writeAtomically(Array(key.pemRepresentation.utf8) + [UInt8(ascii: "\n")], to: paths.key, permissions: 0o600)
        return key
    }

    /// A PKCS#10 certificate request (DER) for `key`, naming `edgeId`.
    public static func certificateRequest(edgeId: String, key: P256.Signing.PrivateKey) throws(CoreError) -> [UInt8] {
        do {
            let request = try CertificateSigningRequest(
                version: .v1,
                subject: try DistinguishedName { CommonName(edgeId) },
                privateKey: Certificate.PrivateKey(key),
                attributes: CertificateSigningRequest.Attributes(),
                signatureAlgorithm: .ecdsaWithSHA256)
            var serializer = DER.Serializer()
            try serializer.serialize(request)
            return serializer.serializedBytes
        } catch {
            throw CoreError(.invalidArgument, "could not make a certificate request for edge id '\(edgeId)': \(error)")
        }
    }

    /// Checks what the server sent back against what was asked (the key, the edge id, the CA's signature) and
    /// stores it: the certificate and the CA's certificate, each written atomically.
    /// - Throws: ``CoreError`` (`invalidData`) when the answer does not match the request or the CA given.
    public static func store(
        certificateDER: [UInt8], authorityDER: [UInt8], edgeId: String, key: P256.Signing.PrivateKey,
        trustedAuthority: Certificate?, stateDirectory: String
    ) throws(CoreError) -> DeviceIdentity {
        let certificate: Certificate
        let authority: Certificate
        do {
            certificate = try Certificate(derEncoded: certificateDER)
            authority = try Certificate(derEncoded: authorityDER)
        } catch {
            throw CoreError(.invalidData, "the server's answer is not a certificate; is it a Flock server? (\(error))")
        }
        if let trustedAuthority, trustedAuthority != authority {
            throw CoreError(.invalidData, "the server's CA is not the one given with --ca; check that --ca is this server's tls/ca.pem")
        }
        guard authority.publicKey.isValidSignature(certificate.signature, for: certificate) else {
            throw CoreError(.invalidData, "the device certificate is not signed by the server's CA; nothing was stored")
        }
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey), Self.edgeId(of: certificate) == edgeId else {
            throw CoreError(.invalidData, "the device certificate is not for this device's key and id; nothing was stored")
        }
        let paths = Paths(stateDirectory: stateDirectory)
        try FileIO.writeAtomically(Array(try pem(authority).utf8), to: paths.authority, permissions: 0o600)
        try FileIO.writeAtomically(Array(try pem(certificate).utf8), to: paths.certificate, permissions: 0o600)
        return DeviceIdentity(edgeId: edgeId, certificate: certificate, privateKey: key, authority: authority)
    }

    /// True when less than a third of the certificate's lifetime is left at `now`: time to renew it.
    public func needsRenewal(now: Date = Date()) -> Bool {
        let lifetime = certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore)
        return certificate.notValidAfter.timeIntervalSince(now) < lifetime / 3
    }

    /// The edge id a device certificate carries, or nil.
    public static func edgeId(of certificate: Certificate) -> String? { DeviceCertificateName.edgeId(of: certificate) }

    private static func pem(_ certificate: Certificate) throws(CoreError) -> String {
        do { return try certificate.serializeAsPEM().pemString + "\n" } catch {
            throw CoreError(.invalidData, "could not encode a certificate: \(error)")
        }
    }

    private static func readCertificate(_ path: String) throws(CoreError) -> Certificate {
        let text = String(decoding: try FileIO.read(path), as: UTF8.self)
        do { return try Certificate(pemEncoded: text) } catch {
            throw CoreError(.corruptFile, "\(path) is not a PEM certificate; enrol again (flock-edge enrol)")
        }
    }

    private static func readKey(_ path: String) throws(CoreError) -> P256.Signing.PrivateKey {
        let text = String(decoding: try FileIO.read(path), as: UTF8.self)
        do { return try P256.Signing.PrivateKey(pemRepresentation: text) } catch {
            throw CoreError(.corruptFile, "\(path) is not a P-256 key in PEM; delete the identity folder and enrol again with a new token")
        }
    }
}



extension DeviceIdentity {
    /// Enrols this device with the server `edge` talks to: makes (or reuses) the device's key, sends a certificate
    /// request with the one-time `token`, checks the certificate that comes back and stores it.
    /// - Parameter trustedAuthority: the CA the operator gave (`--ca`); the answer must come from it.
    /// - Throws: ``CoreError`` with the server's reason (a used, expired or unknown token; an id in use) and what
    ///   to do.
    public static func enrol(
        edge: some Flock_V1_EdgeService.ClientProtocol, token: String, edgeId: String, trustedAuthority: Certificate?, stateDirectory: String
    ) async throws(CoreError) -> DeviceIdentity {
        let key = try loadOrCreateKey(stateDirectory: stateDirectory)
        var request = Flock_V1_EnrolRequest()
        request.token = token
        request.edgeID = edgeId
        request.certificateRequest = Data(try certificateRequest(edgeId: edgeId, key: key))
        let response: Flock_V1_EnrolResponse
        do {
            response = try await edge.enrol(request, options: EdgeConnection.options(timeout: 30)) { try $0.message }
        } catch {
            throw refusal(error, doing: "enrol")
        }
        return try store(
            certificateDER: Array(response.certificate), authorityDER: Array(response.caCertificate), edgeId: edgeId, key: key,
            trustedAuthority: trustedAuthority, stateDirectory: stateDirectory)
    }

    /// Asks the server for a new certificate for the same key and id, over a connection that presents this one;
    /// stores it.
    public func renewed(edge: some Flock_V1_EdgeService.ClientProtocol, stateDirectory: String) async throws(CoreError) -> DeviceIdentity {
        var request = Flock_V1_RenewCertificateRequest()
        request.edgeID = edgeId
        request.certificateRequest = Data(try Self.certificateRequest(edgeId: edgeId, key: privateKey))
        let response: Flock_V1_EnrolResponse
        do {
            response = try await edge.renewCertificate(request, options: EdgeConnection.options(timeout: 30)) { try $0.message }
        } catch {
            throw Self.refusal(error, doing: "renew the device certificate")
        }
        return try Self.store(
            certificateDER: Array(response.certificate), authorityDER: Array(response.caCertificate), edgeId: edgeId, key: privateKey,
            trustedAuthority: authority, stateDirectory: stateDirectory)
    }

    private static func refusal(_ error: any Error, doing what: String) -> CoreError {
        guard let rpc = error as? RPCError else { return CoreError(.io, "could not \(what): \(error)") }
        switch rpc.code {
        case .unavailable, .deadlineExceeded:
            return CoreError(.io, "could not \(what): the server did not answer (\(rpc.message)); check --server and that it runs, then try again")
        default:
            return CoreError(.invalidArgument, "the server refused to \(what): \(rpc.message)")
        }
    }
}

extension DeviceIdentity {
    /// How `flock-edge run` connects: with the identity stored in `stateDirectory`, if the device enrolled (mutual
    /// TLS presenting its certificate, trusting `trust` or else the CA it enrolled with), renewed first when less
    /// than a third of its lifetime is left; otherwise `trust` as it is (nil: plaintext).
    /// - Returns: the transport security, and the identity (nil: not enrolled).
    /// - Throws: ``CoreError`` when the stored identity is damaged, or renewal is due and the server refuses it.
    public static func connectionSecurity(
        stateDirectory: String, server: ServerAddress, trust: ClientTLS?, log: (String) -> Void
    ) async throws(CoreError) -> (tls: ClientTLS?, identity: DeviceIdentity?) {
        guard var identity = try load(stateDirectory: stateDirectory) else { return (trust, nil) }
        let paths = Paths(stateDirectory: stateDirectory)
        let base = trust ?? ClientTLS(trust: .certificateAuthority(path: paths.authority))
        let tls = base.presenting(try ClientTLS.Identity(certificateFile: paths.certificate, keyFile: paths.key))
        if identity.needsRenewal() {
            guard identity.certificate.notValidAfter > Date() else {
                throw CoreError(
                    .invalidArgument,
                    "the device certificate in \(paths.certificate) expired on \(identity.certificate.notValidAfter); ask the operator for a new token and enrol again (flock-edge enrol)")
            }
            let connection = EdgeConnection(transport: try server.clientTransport(tls: tls))
            let current = identity
            do {
                identity = try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await connection.run() }
                    defer { connection.close() }
                    return try await current.renewed(edge: connection.edge, stateDirectory: stateDirectory)
                }
            } catch let error as CoreError {
                throw error
            } catch {
                throw CoreError(.io, "could not renew the device certificate: \(error)")
            }
            log("renewed the device certificate of edge \(identity.edgeId): valid until \(identity.certificate.notValidAfter.formatted(.iso8601))")
        }
        return (tls, identity)
    }
}
