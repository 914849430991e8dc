import Crypto
import FlockCore
import FlockServer
import FlockTestSupport
import Foundation
import Testing
import X509

@Suite struct CertificateAuthorityTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// swift-certificates' own RFC 5280 verifier with `ca` as the only root, at `time`.
    static func verify(
        _ leaf: Certificate, against ca: Certificate, at time: Date = now, hostname: String? = nil, ip: String? = nil
    ) async -> Bool {
        var verifier = Verifier(rootCertificates: CertificateStore([ca])) {
            RFC5280Policy(fixedValidationTime: time)
            if hostname != nil || ip != nil { ServerIdentityPolicy(serverHostname: hostname, serverIP: ip) }
        }
        if case .validCertificate = await verifier.validate(leaf: leaf, intermediates: CertificateStore()) { return true }
        return false
    }

    static func request(key: P256.Signing.PrivateKey = P256.Signing.PrivateKey(), name: String = "anything") throws -> CertificateSigningRequest {
        try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(name) },
            privateKey: Certificate.PrivateKey(key), attributes: CertificateSigningRequest.Attributes())
    }

    @Test func serverCertificateVerifiesForItsHostsAndLoopbackOnly() async throws {
        let ca = try CertificateAuthority.create(now: Self.now)
        let (server, key) = try ca.issueServerCertificate(hosts: ["flock.example.org", "10.1.2.3"], now: Self.now)
        #expect(server.publicKey == Certificate.PublicKey(key.publicKey))
        #expect(try server.extensions.extendedKeyUsage?.contains(.serverAuth) == true)
        #expect(await Self.verify(server, against: ca.certificate))
        #expect(await Self.verify(server, against: ca.certificate, hostname: "flock.example.org"))
        #expect(await Self.verify(server, against: ca.certificate, hostname: "localhost"))
        #expect(await Self.verify(server, against: ca.certificate, ip: "10.1.2.3"))
        #expect(await Self.verify(server, against: ca.certificate, ip: "127.0.0.1"))
        #expect(await Self.verify(server, against: ca.certificate, ip: "::1"))
        #expect(await !Self.verify(server, against: ca.certificate, hostname: "other.example.org"))
        #expect(await !Self.verify(server, against: ca.certificate, ip: "10.1.2.4"))
        // Expired a year and a day later; not yet valid before it was issued (beyond the allowed skew).
        #expect(await !Self.verify(server, against: ca.certificate, at: Self.now + 366 * 86_400))
        #expect(await !Self.verify(server, against: ca.certificate, at: Self.now - 3600))
        #expect(throws: CoreError.self) { try ca.issueServerCertificate(hosts: ["bad host/name"]) }
    }

    @Test func deviceCertificateCarriesTheEdgeIdAndVerifiesOnlyAgainstItsCA() async throws {
        let ca = try CertificateAuthority.create(now: Self.now)
        let other = try CertificateAuthority.create(commonName: "Someone else's CA", now: Self.now)
        let deviceKey = P256.Signing.PrivateKey()
        let device = try ca.issueDeviceCertificate(
            for: try Self.request(key: deviceKey, name: "edge-b"), edgeId: "edge-a", validFor: .seconds(30 * 86_400), now: Self.now)

        // The CA names the edge, whatever the request asked for; the key is the device's.
        #expect(CertificateAuthority.edgeId(of: device) == "edge-a")
        #expect(device.subject.description.contains("CN=edge-a"))
        #expect(device.publicKey == Certificate.PublicKey(deviceKey.publicKey))
        #expect(try device.extensions.extendedKeyUsage == ExtendedKeyUsage([.clientAuth]))
        #expect(try device.extensions.keyUsage == KeyUsage(digitalSignature: true))
        #expect(try device.extensions.basicConstraints == .notCertificateAuthority)
        #expect(device.notValidAfter == Self.now + 30 * 86_400)

        #expect(await Self.verify(device, against: ca.certificate))
        #expect(await !Self.verify(device, against: other.certificate))
        #expect(await !Self.verify(device, against: ca.certificate, at: Self.now + 31 * 86_400))
        // A server or CA certificate names no edge.
        #expect(CertificateAuthority.edgeId(of: ca.certificate) == nil)
        #expect(CertificateAuthority.edgeId(of: try ca.issueServerCertificate(hosts: []).certificate) == nil)
    }

    @Test func aRequestWhoseSignatureDoesNotVerifyOrABadEdgeIdIsRefused() throws {
        let ca = try CertificateAuthority.create(now: Self.now)
        // The last byte of the signature flipped: the request still parses, its signature no longer verifies.
        let signed = try Self.request()
        var der = try signed.serializeAsPEM().derBytes
        der[der.count - 1] ^= 0x01
        let tampered = try CertificateSigningRequest(
            pemEncoded: "-----BEGIN CERTIFICATE REQUEST-----\n\(Data(der).base64EncodedString(options: .lineLength64Characters))\n-----END CERTIFICATE REQUEST-----\n")
        #expect(throws: CoreError.self) { try ca.issueDeviceCertificate(for: tampered, edgeId: "e1", validFor: .seconds(60), now: Self.now) }
        #expect(throws: CoreError.self) { try ca.issueDeviceCertificate(for: signed, edgeId: "a b", validFor: .seconds(60), now: Self.now) }
        #expect(throws: CoreError.self) { try ca.issueDeviceCertificate(for: signed, edgeId: "", validFor: .seconds(60), now: Self.now) }
        #expect(throws: CoreError.self) { try ca.issueDeviceCertificate(for: signed, edgeId: "e1", validFor: .zero, now: Self.now) }
        #expect(try ca.issueDeviceCertificate(for: signed, edgeId: "e1", validFor: .seconds(60), now: Self.now).serialNumber
            != ca.issueDeviceCertificate(for: signed, edgeId: "e1", validFor: .seconds(60), now: Self.now).serialNumber)
    }

    @Test func writesAndLoadsTheCAWithAPrivateKeyFile() async throws {
        let folder = TestData.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(!CertificateAuthority.exists(inDataDirectory: folder))
        #expect(throws: CoreError.self) { try CertificateAuthority.load(fromDataDirectory: folder) }
        let ca = try CertificateAuthority.create()
        try ca.write(toDataDirectory: folder)
        #expect(CertificateAuthority.exists(inDataDirectory: folder))
        let keyMode = try FileManager.default.attributesOfItem(atPath: folder + "/tls/ca.key")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        let loaded = try CertificateAuthority.load(fromDataDirectory: folder)
        #expect(loaded.certificate == ca.certificate)
        #expect(loaded.fingerprint == ca.fingerprint)
        #expect(loaded.fingerprint.count == 64)
        // The loaded CA still signs certificates that verify against the written one.
        let device = try loaded.issueDeviceCertificate(for: try Self.request(), edgeId: "e7", validFor: .seconds(3600))
        #expect(await Self.verify(device, against: try CertificateAuthority.readCertificate(folder + "/tls/ca.pem"), at: Date()))

        // A key that is not the certificate's is refused, naming the problem.
        try Array(P256.Signing.PrivateKey().pemRepresentation.utf8).write(to: folder + "/tls/ca.key")
        #expect { try CertificateAuthority.load(fromDataDirectory: folder) } throws: { ($0 as? CoreError)?.message.contains("does not belong") == true }
        try Array("garbage".utf8).write(to: folder + "/tls/ca.pem")
        #expect { try CertificateAuthority.load(fromDataDirectory: folder) } throws: { ($0 as? CoreError)?.code == .corruptFile }
    }
}

private extension Array where Element == UInt8 {
    func write(to path: String) throws { try Data(self).write(to: URL(fileURLWithPath: path)) }
}
