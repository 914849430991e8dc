import FlockCore
import FlockWire
import Foundation
import NIOCore
import X509

/// `serve`'s transport security: TLS (the default) with the certificate in the data directory, created on first
/// start, or one the operator brings; or plaintext, which a non-loopback listener allows only with `--insecure`.
public struct ServeTLS: Sendable, Equatable {
    /// `--tls on|off`.
    public enum Mode: String, Sendable, CaseIterable {
        /// TLS; client certificates are verified against the CA when presented.
        case on
        /// Plaintext HTTP/2.
        case off
    }

    /// TLS or plaintext.
    public var mode = Mode.on
    /// Allow plaintext on a non-loopback address (`--insecure`).
    public var insecure = false
    /// The operator's own certificate (PEM), instead of `DATA_DIR/tls/server.pem`.
    public var certificatePath: String?
    /// The key of ``certificatePath``.
    public var keyPath: String?
    /// CA certificates (PEM) that client certificates are verified against, instead of `DATA_DIR/tls/ca.pem`.
    public var clientCAPath: String?

    /// Default settings: TLS with the data directory's certificate.
    public init() {}

    /// Checks the combination with the listen address.
    /// - Throws: ``CoreError/Code/invalidArgument`` saying what to change.
    public func validate(listen: ServerAddress) throws(CoreError) {
        if (certificatePath == nil) != (keyPath == nil) {
            throw CoreError(.invalidArgument, "--tls-cert and --tls-key go together: give both (the certificate and its key), or neither for the data directory's")
        }
        if mode == .off {
            if certificatePath != nil || clientCAPath != nil {
                throw CoreError(.invalidArgument, "--tls-cert, --tls-key and --tls-client-ca need --tls on")
            }
            if !listen.isLoopback && !insecure {
                throw CoreError(
                    .invalidArgument,
                    "--tls off on \(listen) would let anyone on the network read and alter every update and token; keep TLS on (the default), or add --insecure if this network is yours alone")
            }
        }
    }

    /// What the server listens with; creates the CA and server certificate in `DATA_DIR/tls` when TLS is on and
    /// neither they nor an operator's certificate exist.
    /// - Parameters:
    ///   - dataDirectory: the server's data directory.
    ///   - listen: the listen address (its host goes into a created certificate).
    ///   - log: told what was created or is served, and any warning (lines starting with `warning:`).
    /// - Throws: ``CoreError`` for files that cannot be read or written, or a key that is not its certificate's.
    public func security(
        dataDirectory: String, listen: ServerAddress, log: @escaping @Sendable (String) -> Void
    ) throws(CoreError) -> ServeTransportSecurity {
        guard mode == .on else {
            if !listen.isLoopback {
                log("warning: --insecure: TLS is off on \(listen); updates, models and tokens cross the network in the clear")
            }
            return .plaintext
        }
        let certificatePath: String
        let keyPath: String
        if let ownCertificate = self.certificatePath, let ownKey = self.keyPath {
            certificatePath = ownCertificate
            keyPath = ownKey
        } else {
            certificatePath = CertificateAuthority.serverCertificatePath(inDataDirectory: dataDirectory)
            keyPath = CertificateAuthority.serverKeyPath(inDataDirectory: dataDirectory)
            if !FileManager.default.fileExists(atPath: certificatePath) || !FileManager.default.fileExists(atPath: keyPath) {
                let created = try ServerTLSFiles.create(
                    dataDirectory: dataDirectory, hosts: ServerTLSFiles.hosts(listeningOn: listen), keepExistingCA: true)
                created.lines.forEach(log)
            }
        }
        let certificate = try ServerCertificate(certificatePath: certificatePath, keyPath: keyPath, log: log)
        var authorities: [Certificate] = []
        let clientCAPath = self.clientCAPath ?? CertificateAuthority.certificatePath(inDataDirectory: dataDirectory)
        if self.clientCAPath != nil || FileManager.default.fileExists(atPath: clientCAPath) {
            let text = String(decoding: try FileIO.read(clientCAPath), as: UTF8.self)
            authorities = text.components(separatedBy: "-----END CERTIFICATE-----").compactMap {
                $0.contains("-----BEGIN CERTIFICATE-----") ? try? Certificate(pemEncoded: $0 + "-----END CERTIFICATE-----") : nil
            }
            guard !authorities.isEmpty else {
                throw CoreError(.corruptFile, "\(clientCAPath) holds no PEM certificate; give the CA that issues the edges' certificates")
            }
        }
        let leaf = certificate.certificate
        log("TLS: serving \(certificatePath) (SHA-256 \(certificate.fingerprint), valid until \(ISO8601DateFormatter().string(from: leaf.notValidAfter)), for \(CertificateDetails.hostNames(of: leaf).joined(separator: ", "))); "
            + (authorities.isEmpty ? "client certificates are not requested" : "client certificates are verified against \(clientCAPath)"))
        if leaf.notValidAfter < Date() {
            log("warning: \(certificatePath) expired on \(leaf.notValidAfter); edges will refuse it: replace it (flock-server init --force, or your own) and the server picks it up without a restart")
        }
        return .tls(certificate: certificate, clientCertificateAuthorities: authorities)
    }
}

/// The TLS files of a data directory: `flock-server init` and `serve`'s first start create them.
public enum ServerTLSFiles {
    /// What was created, for the operator.
    public struct Created: Sendable {
        /// The CA certificate (give it to edges as `--ca`).
        public var caPath: String
        /// SHA-256 of the CA certificate.
        public var caFingerprint: String
        /// The server certificate.
        public var certificatePath: String
        /// SHA-256 of the server certificate (for `--server-fingerprint`).
        public var certificateFingerprint: String
        /// The names and addresses the server certificate is valid for.
        public var names: [String]
        /// Whether the CA was created now (else an existing one issued the certificate).
        public var createdCA: Bool

        /// The lines to print.
        public var lines: [String] {
            [
                createdCA ? "created the CA \(caPath) (SHA-256 \(caFingerprint)); its key \(caPath.replacingOccurrences(of: ".pem", with: ".key")) is mode 0600 and must stay on this machine"
                    : "the CA \(caPath) (SHA-256 \(caFingerprint)) issued the server certificate",
                "created the server certificate \(certificatePath) (SHA-256 \(certificateFingerprint)) for \(names.joined(separator: ", "))",
                "edges trust this server with: --ca \(caPath) (copy the file to them), or --server-fingerprint \(certificateFingerprint)",
            ]
        }
    }

    /// Creates the CA (unless `keepExistingCA` and there is one) and a server certificate for `hosts`
    /// (plus `localhost`, `127.0.0.1`, `::1`) in `DATA_DIR/tls`, valid for `serverValidity` seconds from `now`.
    /// - Throws: ``CoreError`` when the files cannot be written or an existing CA cannot be read.
    public static func create(
        dataDirectory: String, hosts: [String], keepExistingCA: Bool, now: Date = Date(),
        serverValidity: TimeInterval = CertificateAuthority.defaultServerValidity
    ) throws(CoreError) -> Created {
        _ = try FileIO.createPrivateDirectory(dataDirectory)
        let createCA = !keepExistingCA || !CertificateAuthority.exists(inDataDirectory: dataDirectory)
        let ca: CertificateAuthority
        if createCA {
            ca = try CertificateAuthority.create(now: now)
            try ca.write(toDataDirectory: dataDirectory)
        } else {
            ca = try CertificateAuthority.load(fromDataDirectory: dataDirectory)
        }
        let (certificate, key) = try ca.issueServerCertificate(hosts: hosts, validFor: serverValidity, now: now)
        let keyPath = CertificateAuthority.serverKeyPath(inDataDirectory: dataDirectory)
        let certificatePath = CertificateAuthority.serverCertificatePath(inDataDirectory: dataDirectory)
        // The key first: a serve that looks in between sees a new key with the old certificate, ignores the pair
        // (they do not match) and looks again.
        try FileIO.writeAtomically(Array(key.pemRepresentation.utf8), to: keyPath, permissions: 0o600)
        try FileIO.writeAtomically(Array(try CertificateAuthority.pem(certificate).utf8), to: certificatePath, permissions: 0o600)
        return Created(
            caPath: CertificateAuthority.certificatePath(inDataDirectory: dataDirectory), caFingerprint: ca.fingerprint,
            certificatePath: certificatePath, certificateFingerprint: CertificateAuthority.fingerprint(of: certificate),
            names: CertificateDetails.hostNames(of: certificate), createdCA: createCA)
    }

    /// The names a server listening on `listen` is reached by: its address when it is a specific one, else this
    /// machine's host name and every address of its network interfaces.
    public static func hosts(listeningOn listen: ServerAddress) -> [String] {
        let wildcard = listen.host == "0.0.0.0" || listen.host == "::" || listen.host == "0:0:0:0:0:0:0:0"
        guard wildcard else { return [listen.host] }
        var hosts: [String] = []
        var name = [CChar](repeating: 0, count: 256)
        if gethostname(&name, name.count) == 0 {
            let hostName = String(cString: name)
            if !hostName.isEmpty, hostName.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }) { hosts.append(hostName) }
        }
        for device in (try? System.enumerateDevices()) ?? [] {
            guard let address = device.address?.ipAddress else { continue }
            // Link-local IPv6 addresses carry a zone that no certificate can name.
            if !address.contains("%"), !hosts.contains(address) { hosts.append(address) }
        }
        return hosts
    }
}
