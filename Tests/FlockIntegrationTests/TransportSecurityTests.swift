import Crypto
import FlockCore
import FlockServer
import FlockTestSupport
import FlockWire
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Testing
import X509

/// TLS between serve and its clients, over real sockets: the certificates serve creates, what clients refuse and
/// why, pinning, rotation without a restart, and client certificates as handlers see them.
@Suite(.serialized) struct TransportSecurityTests {
    static func fingerprint(_ path: String) throws -> String {
        CertificateAuthority.fingerprint(of: try CertificateAuthority.readCertificate(path))
    }

    /// `flock-server admin status --json --data-dir DIR` plus `arguments`.
    static func status(_ fleet: Fleet, _ arguments: [String], dataDirectory: String? = nil) throws -> TestData.ProcessResult {
        try TestData.run(
            TestData.executable("flock-server"),
            ["admin", "status", "--json", "--data-dir", dataDirectory ?? fleet.dataDirectory] + arguments, seconds: 60)
    }

    @Test func serveCreatesItsCertificatesAndEdgesWithTheCACompleteRounds() throws {
        let fleet = Fleet()
        _ = try fleet.startServerWithThreeEdges(["--rounds", "2", "--min-clients", "3", "--secure-aggregation", "off"])
        try fleet.wait("two rounds over TLS", seconds: 240) { (try fleet.status()["completed_rounds"] as? Int ?? 0) >= 2 }
        let tls = fleet.dataDirectory + "/tls"
        for file in ["ca.pem", "ca.key", "server.pem", "server.key"] { #expect(FileManager.default.fileExists(atPath: tls + "/" + file)) }
        for key in ["ca.key", "server.key"] {
            #expect(try FileManager.default.attributesOfItem(atPath: tls + "/" + key)[.posixPermissions] as? Int == 0o600)
        }
        let log = fleet.log("server")
        #expect(log.contains("created the CA \(tls)/ca.pem"))
        #expect(log.contains("--ca \(tls)/ca.pem"))
        #expect(log.contains("SHA-256 \(try Self.fingerprint(tls + "/server.pem"))"))
        // The edges were given --ca by the shared helper: the default path is the TLS path.
        #expect(fleet.processes["edge-0"]?.arguments?.contains("--ca") == true)
    }

    @Test func clientsRefuseAWrongExpiredOrUnpinnedServerCertificateSayingWhatToDo() async throws {
        let fleet = Fleet()
        // The server's certificate expired 35 days ago (issued 400 days ago for a year) by its own CA.
        _ = try ServerTLSFiles.create(
            dataDirectory: fleet.dataDirectory, hosts: ["127.0.0.1"], keepExistingCA: false, now: Date() - 400 * 86_400)
        try fleet.startServer([])
        #expect(fleet.log("server").contains("expired on"))
        let expired = try Self.status(fleet, [])
        #expect(expired.status == 1)
        #expect(expired.error.contains("certificate expired on") && expired.error.contains("renew"), "\(expired.error)")
        fleet.stopAll()

        // A fresh certificate from the same CA: accepted with the CA, or pinned.
        let fresh = try ServerTLSFiles.create(dataDirectory: fleet.dataDirectory, hosts: ["127.0.0.1"], keepExistingCA: true)
        try fleet.startServer([])
        #expect(try Self.status(fleet, []).status == 0)
        #expect(try Self.status(fleet, ["--server-fingerprint", fresh.certificateFingerprint]).status == 0)
        // With colons and capitals, as other tools print fingerprints.
        let colons = stride(from: 0, to: 64, by: 2).map { i in fresh.certificateFingerprint.dropFirst(i).prefix(2).uppercased() }.joined(separator: ":")
        #expect(try Self.status(fleet, ["--server-fingerprint", colons]).status == 0)

        // A wrong pin.
        let wrongPin = String(repeating: "ab", count: 32)
        let pinned = try Self.status(fleet, ["--server-fingerprint", wrongPin])
        #expect(pinned.status == 1)
        #expect(pinned.error.contains("not the pinned \(wrongPin)") && pinned.error.contains(fresh.certificateFingerprint), "\(pinned.error)")

        // Another CA.
        let other = fleet.folder + "/other"
        let created = try TestData.run(TestData.executable("flock-server"), ["init", "--data-dir", other, "--host", "127.0.0.1"])
        #expect(created.status == 0, "\(created.error)")
        let foreign = try Self.status(fleet, ["--ca", other + "/tls/ca.pem"])
        #expect(foreign.status == 1)
        #expect(foreign.error.contains("not by the CA in \(other)/tls/ca.pem") && foreign.error.contains("--ca"), "\(foreign.error)")

        // A self-signed certificate (the other CA's own, served with its key) with this server's CA trusted.
        fleet.stopAll()
        try fleet.startServer(["--tls-cert", other + "/tls/ca.pem", "--tls-key", other + "/tls/ca.key"])
        let selfSigned = try Self.status(fleet, [])
        #expect(selfSigned.status == 1)
        #expect(selfSigned.error.contains("self-signed") && selfSigned.error.contains("--server-fingerprint"), "\(selfSigned.error)")

        // An edge says the same in its log, and keeps trying (its operator may fix the server).
        try fleet.startEdge("edge", server: try String(contentsOfFile: fleet.dataDirectory + "/serve.address", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines), data: TestData.path("mnist5k-test.csv"))
        try fleet.wait("the edge explains the refusal", seconds: 60) { fleet.log("edge").contains("self-signed") }
    }

    @Test func aPlaintextClientIsRefusedByATLSServerAndPlaintextNeedsLoopbackOrInsecure() async throws {
        let fleet = Fleet()
        let address = try ServerAddress(parsing: try fleet.startServer([]))
        let plaintext = try await TLSPeer.call(address, tls: nil)
        #expect(plaintext.error?.code == .unavailable)
        // The server is unharmed: a TLS client still gets through.
        #expect(try Self.status(fleet, []).status == 0)

        // The other way round: a TLS client to a plaintext server says so.
        fleet.stopAll()
        try fleet.startServer(["--tls", "off"])
        let toPlaintext = try Self.status(fleet, [])
        #expect(toPlaintext.status == 1)
        #expect(toPlaintext.error.contains("does not speak TLS") && toPlaintext.error.contains("--tls off"), "\(toPlaintext.error)")
        #expect(try Self.status(fleet, ["--tls", "off"]).status == 0)

        // Plaintext beyond loopback is a usage error without --insecure, and a warning with it.
        let refused = try TestData.run(TestData.executable("flock-server"), [
            "serve", "--tls", "off", "--listen", "0.0.0.0:0", "--data-dir", fleet.folder + "/open", "--enrolment", "open",
        ], seconds: 30)
        #expect(refused.status == 64)
        #expect(refused.error.contains("--insecure"), "\(refused.error)")
        try fleet.startServer("insecure", dataDirectory: fleet.folder + "/insecure", ["--tls", "off", "--insecure", "--listen", "0.0.0.0:0"])
        #expect(fleet.log("insecure").contains("TLS is off on 0.0.0.0"))
        let edge = try TestData.run(TestData.executable("flock-edge"), [
            "run", "--server", "192.0.2.1:7070", "--tls", "off", "--data", TestData.path("mnist5k-test.csv"), "--state-dir", fleet.folder + "/e",
        ], seconds: 30)
        #expect(edge.status == 64 && edge.error.contains("--insecure"), "\(edge.error)")
        let noTrust = try TestData.run(TestData.executable("flock-edge"), [
            "run", "--server", "192.0.2.1:7070", "--data", TestData.path("mnist5k-test.csv"), "--state-dir", fleet.folder + "/e",
        ], seconds: 30)
        #expect(noTrust.status == 64 && noTrust.error.contains("--ca") && noTrust.error.contains("--server-fingerprint"), "\(noTrust.error)")
    }

    @Test func aRotatedServerCertificateIsServedToNewConnectionsWithoutARestart() throws {
        let fleet = Fleet()
        try fleet.startServer([])
        let path = fleet.dataDirectory + "/tls/server.pem"
        let before = try Self.fingerprint(path)
        #expect(try Self.status(fleet, ["--server-fingerprint", before]).status == 0)
        let pid = fleet.processes["server"]?.processIdentifier

        let renew = try TestData.run(TestData.executable("flock-server"), ["init", "--data-dir", fleet.dataDirectory, "--host", "127.0.0.1", "--renew"])
        #expect(renew.status == 0, "\(renew.error)")
        let after = try Self.fingerprint(path)
        #expect(after != before)
        try fleet.wait("the new certificate is served", seconds: 30) { try Self.status(fleet, ["--server-fingerprint", after]).status == 0 }
        #expect(try Self.status(fleet, ["--server-fingerprint", before]).status == 1)
        #expect(fleet.isRunning("server") && fleet.processes["server"]?.processIdentifier == pid)
        #expect(fleet.log("server").contains("TLS certificate reloaded from \(path) (SHA-256 \(after)"))
        // init without --renew or --force leaves an existing CA alone.
        let again = try TestData.run(TestData.executable("flock-server"), ["init", "--data-dir", fleet.dataDirectory, "--host", "127.0.0.1"])
        #expect(again.status == 1 && again.error.contains("--renew") && again.error.contains("--force"))
        #expect(try Self.fingerprint(path) == after)
    }

    @Test func aClientCertificateFromTheCAReachesTheHandlerAndOneFromAnotherCAIsRefused() async throws {
        let folder = TestData.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = try ServerTLSFiles.create(dataDirectory: folder, hosts: ["127.0.0.1"], keepExistingCA: false)
        let ca = try CertificateAuthority.load(fromDataDirectory: folder)
        let other = try CertificateAuthority.create(commonName: "Another CA")
        var settings = ServeTLS()
        settings.mode = .on
        let security = try settings.security(dataDirectory: folder, listen: ServerAddress(host: "127.0.0.1", port: 0)) { _ in }
        let transport = ServeTransport(address: .ipv4(host: "127.0.0.1", port: 0), security: security)
        let server = GRPCServer(transport: transport, services: [TLSPeer()])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            let port = try await transport.listeningAddress.ipv4?.port ?? 0
            let address = ServerAddress(host: "127.0.0.1", port: port)
            let trust = ClientTLS(trust: .certificateAuthority(path: CertificateAuthority.certificatePath(inDataDirectory: folder)))

            #expect(try await TLSPeer.call(address, tls: trust).answer == "no certificate")
            #expect(try await TLSPeer.call(address, tls: trust.presenting(try Self.device("edge-7", by: ca))).answer == "edge-7")
            let foreign = try await TLSPeer.call(address, tls: trust.presenting(try Self.device("edge-8", by: other)))
            #expect(foreign.answer == nil && foreign.error?.code == .unavailable)
            #expect(foreign.error?.message.contains("refused this client's certificate") == true, "\(String(describing: foreign.error))")
            // The server still answers afterwards.
            #expect(try await TLSPeer.call(address, tls: trust.presenting(try Self.device("edge-9", by: ca))).answer == "edge-9")
        }
    }

    /// A device key and a certificate for it from `authority`.
    static func device(_ id: String, by authority: CertificateAuthority) throws -> ClientTLS.Identity {
        let key = P256.Signing.PrivateKey()
        let request = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(id) }, privateKey: Certificate.PrivateKey(key),
            attributes: CertificateSigningRequest.Attributes())
        let certificate = try authority.issueDeviceCertificate(for: request, edgeId: id, validFor: .seconds(3600))
        return ClientTLS.Identity(certificatePEM: try CertificateAuthority.pem(certificate), privateKeyPEM: key.pemRepresentation)
    }
}

/// A one-method service that answers with the edge id of the certificate the call's connection presented, as a
/// handler finds it in `context.transportSpecific`.
struct TLSPeer: RegistrableRPCService {
    static let method = MethodDescriptor(fullyQualifiedService: "flock.test.Peer", method: "Who")

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(forMethod: Self.method, deserializer: Raw(), serializer: Raw()) { _, context in
            let certificate = (context.transportSpecific as? HTTP2ServerTransport.Posix.Context)?.peerCertificate
            let answer = certificate.map { CertificateAuthority.edgeId(of: $0) ?? "a certificate without an edge id" } ?? "no certificate"
            return StreamingServerResponse(single: ServerResponse(message: Array(answer.utf8)))
        }
    }

    /// Calls `Who` over a new connection; the answer, or the error.
    static func call(_ address: ServerAddress, tls: ClientTLS?) async throws -> (answer: String?, error: RPCError?) {
        let transport = try address.clientTransport(tls: tls)
        return try await withGRPCClient(transport: transport) { client in
            var options = CallOptions.defaults
            options.waitForReady = false
            options.timeout = .seconds(20)
            do {
                let bytes = try await client.unary(
                    request: ClientRequest(message: [UInt8]()), descriptor: method, serializer: Raw(), deserializer: Raw(), options: options
                ) { try $0.message }
                return (String(decoding: bytes, as: UTF8.self), nil)
            } catch let error as RPCError {
                return (nil, error)
            }
        }
    }

    struct Raw: MessageSerializer, MessageDeserializer {
        func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
        func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] { bytes.withUnsafeBytes { Array($0) } }
    }
}
