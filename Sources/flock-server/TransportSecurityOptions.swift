import ArgumentParser
import FlockCore
import FlockServer
import FlockWire
import Foundation

extension ServeTLS.Mode: ExpressibleByArgument {}

/// `serve`'s transport security options.
struct ServeTLSOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "TLS for edges and admin: on serves the certificate in DATA_DIR/tls (created on first start, with its CA DATA_DIR/tls/ca.pem for edges' --ca) or --tls-cert; off is plaintext, allowed beyond loopback only with --insecure. [default: on]",
            valueName: "on|off"))
    var tls: ServeTLS.Mode?

    @Flag(help: "Allow --tls off on an address other than loopback (everything crosses the network in the clear).")
    var insecure = false

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("Your own server certificate (PEM, with any intermediates) instead of DATA_DIR/tls/server.pem; read again when it changes on disk. Needs --tls-key.", valueName: "FILE"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("The private key of --tls-cert (PEM).", valueName: "FILE"))
    var tlsKey: String?

    @Option(
        name: .customLong("tls-client-ca"),
        help: ArgumentHelp("CA certificates (PEM) that edges' client certificates must chain to, when they present one. [default: DATA_DIR/tls/ca.pem]", valueName: "FILE"))
    var tlsClientCA: String?

    /// Applies the options given over `tls`.
    func apply(to tls: inout ServeTLS) {
        if let mode = self.tls { tls.mode = mode }
        if insecure { tls.insecure = true }
        if let tlsCert { tls.certificatePath = tlsCert }
        if let tlsKey { tls.keyPath = tlsKey }
        if let tlsClientCA { tls.clientCAPath = tlsClientCA }
    }
}

/// How `flock-server admin` reaches the server: TLS trusting the CA (by default the data directory's), a pinned
/// certificate, or plaintext.
struct ClientTLSOptions: ParsableArguments {
    @Option(help: ArgumentHelp("TLS to the server: on trusts --ca (default: DATA_DIR/tls/ca.pem) or --server-fingerprint; off is plaintext (loopback, or with --insecure). [default: on]", valueName: "on|off"))
    var tls: Switch?

    @Option(help: ArgumentHelp("The server's CA certificate (PEM). [default: DATA_DIR/tls/ca.pem]", valueName: "FILE"))
    var ca: String?

    @Option(name: .customLong("server-fingerprint"), help: ArgumentHelp("Trust exactly the server certificate with this SHA-256 (hex, printed by serve and init) instead of a CA.", valueName: "SHA256HEX"))
    var serverFingerprint: String?

    @Flag(help: "Allow --tls off to an address other than loopback.")
    var insecure = false

    /// The TLS setting for `server`; the CA defaults to the data directory's when it exists.
    /// - Throws: ``CoreError/Code/invalidArgument`` saying what to give.
    func resolve(server: ServerAddress, dataDirectory: String) throws(CoreError) -> ClientTLS? {
        let tls = self.tls?.isOn ?? true
        var ca = self.ca
        if tls, ca == nil, serverFingerprint == nil {
            let own = CertificateAuthority.certificatePath(inDataDirectory: dataDirectory)
            if FileManager.default.fileExists(atPath: own) { ca = own }
        }
        return try ClientTLS.resolve(tls: tls, ca: ca, serverFingerprint: serverFingerprint, insecure: insecure, server: server)
    }
}
