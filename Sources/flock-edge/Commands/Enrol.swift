import ArgumentParser
import FlockCore
import FlockEdge
import FlockWire
import Foundation
import X509

/// `flock-edge enrol`: make this device's key, and get a device certificate for it with a one-time token.
struct Enrol: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Enrol this device with a flock-server: one time, with a token from the operator.",
        discussion: """
            Makes the device's P-256 key here (it never leaves the device), sends a certificate request with the \
            one-time token (flock-server admin enrol create), checks that the certificate that comes back is for \
            this key and id and from the CA given, and keeps key, certificate and CA in --state-dir/identity (mode \
            0600). From then on flock-edge run --state-dir DIR connects with mutual TLS under that identity, trusts \
            that CA for the server, and renews the certificate before it expires. The token is spent; if this \
            command is interrupted after the server answered, run it again with the same token and state folder.

            Example: flock-edge enrol --server flock.example.org:7070 --token-file token.txt --ca ca.pem --state-dir edge-0
            """)

    @Option(help: ArgumentHelp("The server's address.", valueName: "HOST:PORT"))
    var server: String

    @Option(help: ArgumentHelp("The one-time enrolment token; visible to every user in the process list: prefer --token-file or FLOCK_ENROLMENT_TOKEN.", valueName: "TOKEN"))
    var token: String?

    @Option(name: .customLong("token-file"), help: ArgumentHelp("File holding the enrolment token.", valueName: "FILE"))
    var tokenFile: String?

    @OptionGroup(title: "Transport security")
    var transportSecurity: EdgeTLSOptions

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("This edge's own folder (as for run).", valueName: "DIR"))
    var stateDir: String = "./flock-edge-state"

    @Option(help: ArgumentHelp("The edge id to enrol under (default: the one kept in --state-dir, generated once).", valueName: "NAME"))
    var id: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        do { _ = try ServerAddress(parsing: server) } catch { throw ValidationError(error.message) }
        if let id, !WireLimits.isValidEdgeId(id) { throw ValidationError("--id: use 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'") }
        if token != nil && tokenFile != nil { throw ValidationError("give --token or --token-file, not both") }
        if transportSecurity.tls == .off || transportSecurity.ca == nil && transportSecurity.serverFingerprint == nil {
            throw ValidationError("give the server's CA with --ca FILE (its DATA_DIR/tls/ca.pem) or --server-fingerprint SHA256: enrolment always uses TLS")
        }
    }

    func run() async throws {
        do {
            let address = try ServerAddress(parsing: server)
            let secret = try enrolmentToken()
            let trust = try transportSecurity.clientTLS(server: address, enrolled: false)
            let folder = try StateFolder(path: stateDir)
            let edgeId = try id ?? folder.edgeId()
            let trusted = try transportSecurity.ca.map { path throws(CoreError) in try Self.readCertificate(path) }
            let connection = EdgeConnection(transport: try address.clientTransport(tls: trust))
            let identity = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await connection.run() }
                defer { connection.close() }
                return try await DeviceIdentity.enrol(
                    edge: connection.edge, token: secret, edgeId: edgeId, trustedAuthority: trusted, stateDirectory: stateDir)
            }
            withExtendedLifetime(folder) {}
            let until = identity.certificate.notValidAfter.formatted(.iso8601)
            if json {
                struct Enrolled: Encodable { let edge: String; let certificateExpires: String; let stateDir: String }
                print(JSONOutput.line(Enrolled(edge: identity.edgeId, certificateExpires: until, stateDir: stateDir)))
            } else {
                print("enrolled as edge \(identity.edgeId); certificate until \(until), renewed automatically")
                print("next: flock-edge run --server \(server) --state-dir \(stateDir) --data LOCAL.csv")
            }
        } catch let error as CoreError {
            throw failure(error.message, json: json)
        }
    }

    private func enrolmentToken() throws(CoreError) -> String {
        let text: String
        if let token {
            text = token
        } else if let tokenFile {
            text = String(decoding: try FileIO.read(tokenFile), as: UTF8.self)
        } else if let environment = ProcessInfo.processInfo.environment["FLOCK_ENROLMENT_TOKEN"] {
            text = environment
        } else {
            throw CoreError(.invalidArgument, "give the enrolment token with --token-file FILE, FLOCK_ENROLMENT_TOKEN or --token (flock-server admin enrol create issues it)")
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 256 else { throw CoreError(.invalidArgument, "the enrolment token is empty or longer than 256 bytes") }
        return trimmed
    }

    static func readCertificate(_ path: String) throws(CoreError) -> Certificate {
        do { return try Certificate(pemEncoded: String(decoding: try FileIO.read(path), as: UTF8.self)) } catch let error as CoreError {
            throw error
        } catch {
            throw CoreError(.invalidData, "--ca \(path) is not a PEM certificate; give the server's DATA_DIR/tls/ca.pem")
        }
    }
}
