import Crypto
import FlockCore
import FlockServer
import FlockTestSupport
import FlockWire
import Foundation
import GRPCCore
import SwiftASN1
import Testing
import X509

/// Enrolment against a real SQLite device directory, a real CA and a real audit log.
@Suite struct DeviceEnrolmentTests {
    let folder = TestData.temporaryFolder()

    func enrolment(lifetime: Duration = DeviceEnrolment.defaultCertificateLifetime) throws -> DeviceEnrolment {
        let authority = try CertificateAuthority.create()
        return DeviceEnrolment(
            directory: try DeviceDirectory(folder: folder), authority: authority, certificateLifetime: lifetime, audit: AuditLog(directory: folder))
    }

    static func request(token: String, id: String, key: P256.Signing.PrivateKey = P256.Signing.PrivateKey()) throws -> Flock_V1_EnrolRequest {
        var request = Flock_V1_EnrolRequest()
        request.token = token
        request.edgeID = id
        request.certificateRequest = try Self.der(key: key, name: id)
        return request
    }

    static func der(key: P256.Signing.PrivateKey, name: String) throws -> Data {
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(name) }, privateKey: Certificate.PrivateKey(key),
            attributes: CertificateSigningRequest.Attributes())
        var serializer = DER.Serializer()
        try serializer.serialize(csr)
        return Data(serializer.serializedBytes)
    }

    static func refusal(_ body: () throws -> Void) -> ServeRefusal? {
        do { try body() } catch let refusal as ServeRefusal { return refusal } catch { return nil }
        return nil
    }

    @Test func aTokenEnrolsOneDeviceWhoseCertificateNamesItAndVerifiesAgainstTheCA() async throws {
        let enrolment = try enrolment()
        let tokens = try await enrolment.createTokens(count: 2, lifetime: 3_600, label: "site-a").tokens
        #expect(tokens.count == 2 && Set(tokens.map(\.token)).count == 2)

        let key = P256.Signing.PrivateKey()
        let answer = try enrolment.enrol(try Self.request(token: tokens[0].token, id: "edge-a", key: key))
        let certificate = try Certificate(derEncoded: Array(answer.certificate))
        #expect(answer.edgeID == "edge-a")
        #expect(CertificateAuthority.edgeId(of: certificate) == "edge-a")
        #expect(certificate.publicKey == Certificate.PublicKey(key.publicKey))
        #expect(try Certificate(derEncoded: Array(answer.caCertificate)) == enrolment.authority.certificate)
        #expect(await CertificateAuthorityTests.verify(certificate, against: enrolment.authority.certificate, at: Date()))
        // About 30 days.
        #expect(abs(certificate.notValidAfter.timeIntervalSinceNow - 30 * 86_400) < 600)

        let device = try #require(enrolment.directory.device("edge-a"))
        #expect(device.label == "site-a" && device.tokenId == tokens[0].id && device.isActive)
        #expect(enrolment.directory.isActive("edge-a"))

        // The token is spent: another device cannot use it; the other token cannot take the id.
        #expect(Self.refusal { _ = try enrolment.enrol(try Self.request(token: tokens[0].token, id: "edge-b")) }?.kind == .unauthenticated)
        #expect(Self.refusal { _ = try enrolment.enrol(try Self.request(token: tokens[1].token, id: "edge-a")) }?.kind == .alreadyExists)
        // The refused attempts changed nothing: the second token still enrols a device of its own.
        _ = try enrolment.enrol(try Self.request(token: tokens[1].token, id: "edge-b"))
        #expect(try enrolment.directory.devices().map(\.edgeId) == ["edge-a", "edge-b"])

        // The directory keeps hashes only, and the audit log has both enrolments and the refusals.
        let file = try FileIO.read(folder + "/" + DeviceDirectory.fileName)
        for token in tokens { #expect(!String(decoding: file, as: UTF8.self).contains(token.token)) }
        let events = try AuditLog(directory: folder).events()
        #expect(events.filter { $0.action == "devices.enrol" && $0.outcome == .ok }.count == 2)
        #expect(events.filter { $0.action == "devices.enrol" && $0.outcome == .refused }.count == 2)
        #expect(events.contains { $0.action == "enrol.create" && $0.outcome == .ok })
    }

    @Test func unknownExpiredAndMalformedRequestsAreRefusedAndChangeNothing() async throws {
        let enrolment = try enrolment()
        let token = try enrolment.directory.createTokens(count: 1, lifetime: 60, label: "", now: Date() - 120)[0]
        #expect(Self.refusal { _ = try enrolment.enrol(try Self.request(token: token.token, id: "edge-a")) }?.message.contains("expired") == true)
        #expect(Self.refusal { _ = try enrolment.enrol(try Self.request(token: "not-a-token", id: "edge-a")) }?.kind == .unauthenticated)

        let fresh = try await enrolment.createTokens(count: 1, lifetime: 600, label: "").tokens[0].token
        var garbage = try Self.request(token: fresh, id: "edge-a")
        garbage.certificateRequest = Data(repeating: 7, count: 100)
        #expect(Self.refusal { _ = try enrolment.enrol(garbage) }?.kind == .invalidArgument)
        var oversized = garbage
        oversized.certificateRequest = Data(count: DeviceEnrolment.maximumRequestBytes + 1)
        #expect(Self.refusal { _ = try enrolment.enrol(oversized) }?.kind == .invalidArgument)
        #expect(Self.refusal { _ = try enrolment.enrol(try Self.request(token: fresh, id: "no spaces")) }?.kind == .invalidArgument)
        // A request signed by another key than the one it carries does not verify.
        var forged = try Self.request(token: fresh, id: "edge-a")
        var bytes = Array(forged.certificateRequest)
        bytes[bytes.count - 5] ^= 0x55
        forged.certificateRequest = Data(bytes)
        #expect(Self.refusal { _ = try enrolment.enrol(forged) } != nil)
        // None of that spent the token.
        #expect(try enrolment.directory.devices().isEmpty)
        _ = try enrolment.enrol(try Self.request(token: fresh, id: "edge-a"))
    }

    @Test func theSameDeviceAskingAgainAfterACrashGetsItsCertificateAgain() async throws {
        let enrolment = try enrolment()
        let token = try await enrolment.createTokens(count: 1, lifetime: 600, label: "").tokens[0].token
        let key = P256.Signing.PrivateKey()
        let first = try enrolment.enrol(try Self.request(token: token, id: "edge-a", key: key))
        // The answer was lost (the device crashed before storing it): the same token, id and key enrol again.
        let second = try enrolment.enrol(try Self.request(token: token, id: "edge-a", key: key))
        #expect(first.certificate != second.certificate)
        #expect(try enrolment.directory.device("edge-a")?.certificateSerial == Certificate(derEncoded: Array(second.certificate)).serialNumber.description)
        // Another key with the same token and id is somebody else.
        #expect(Self.refusal { _ = try enrolment.enrol(try Self.request(token: token, id: "edge-a")) }?.kind == .unauthenticated)
    }

    @Test func renewalNeedsTheDevicesOwnCertificateAndRevocationEndsIt() async throws {
        let enrolment = try enrolment()
        let tokens = try await enrolment.createTokens(count: 1, lifetime: 600, label: "").tokens
        let key = P256.Signing.PrivateKey()
        _ = try enrolment.enrol(try Self.request(token: tokens[0].token, id: "edge-a", key: key))
        var renewal = Flock_V1_RenewCertificateRequest()
        renewal.edgeID = "edge-a"
        renewal.certificateRequest = try Self.der(key: key, name: "edge-a")

        #expect(Self.refusal { _ = try enrolment.renew(renewal, presented: nil) }?.kind == .unauthenticated)
        #expect(Self.refusal { _ = try enrolment.renew(renewal, presented: "edge-b") }?.kind == .permissionDenied)
        let renewed = try enrolment.renew(renewal, presented: "edge-a")
        #expect(try enrolment.directory.device("edge-a")?.certificateSerial == Certificate(derEncoded: Array(renewed.certificate)).serialNumber.description)

        let revoked = try await enrolment.revoke(edgeId: "edge-a")
        #expect(revoked.revokedUnix > 0)
        #expect(!enrolment.directory.isActive("edge-a"))
        #expect(Self.refusal { _ = try enrolment.renew(renewal, presented: "edge-a") }?.kind == .permissionDenied)
        // A revoked id cannot come back, with any token.
        let another = try await enrolment.createTokens(count: 1, lifetime: 600, label: "").tokens[0].token
        #expect(Self.refusal { _ = try enrolment.enrol(try Self.request(token: another, id: "edge-a")) }?.kind == .alreadyExists)
        await #expect(throws: RPCError.self) { _ = try await enrolment.revoke(edgeId: "never-enrolled") }

        // The state survives a reopening of the file (a server restart).
        let reopened = try DeviceDirectory(folder: folder)
        #expect(!reopened.isActive("edge-a"))
        #expect(reopened.device("edge-a")?.revokedAt != nil)
        #expect(try AuditLog(directory: folder).events().contains { $0.action == "devices.revoke" && $0.outcome == .ok })
    }

    @Test func tokenRequestsOutOfRangeAreRefused() throws {
        let directory = try DeviceDirectory(folder: folder)
        #expect(throws: CoreError.self) { _ = try directory.createTokens(count: 0, lifetime: 60, label: "") }
        #expect(throws: CoreError.self) { _ = try directory.createTokens(count: 10_001, lifetime: 60, label: "") }
        #expect(throws: CoreError.self) { _ = try directory.createTokens(count: 1, lifetime: 400 * 86_400, label: "") }
        #expect(throws: CoreError.self) { _ = try directory.createTokens(count: 1, lifetime: 60, label: "two\nlines") }
    }
}
