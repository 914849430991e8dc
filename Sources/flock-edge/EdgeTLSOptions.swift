import ArgumentParser
import FlockCore
import FlockWire

/// `--tls`, `--ca`, `--server-fingerprint` and `--insecure`: how an edge secures its connection to the server.
struct EdgeTLSOptions: ParsableArguments {
    @Option(help: ArgumentHelp("TLS to the server; off talks plaintext (loopback only, unless --insecure). [default: on]", valueName: "on|off"))
    var tls: TLSSwitch = .on

    @Option(help: ArgumentHelp("The server's CA certificate (its DATA_DIR/tls/ca.pem); an enrolled device trusts the CA it enrolled with.", valueName: "FILE"))
    var ca: String?

    @Option(
        name: .customLong("server-fingerprint"),
        help: ArgumentHelp("Instead of --ca: trust exactly the server certificate with this SHA-256 (printed by flock-server init and serve).", valueName: "SHA256"))
    var serverFingerprint: String?

    @Flag(help: "Allow --tls off to a server beyond loopback (everything crosses the network in the clear).")
    var insecure = false

    /// On or off.
    enum TLSSwitch: String, ExpressibleByArgument, CaseIterable { case on, off }

    /// The client TLS these options ask for; an enrolled device without `--ca` or a pin trusts the CA it enrolled
    /// with (nil here, filled in by ``DeviceIdentity/connectionSecurity(stateDirectory:server:trust:log:)``).
    func clientTLS(server: ServerAddress, enrolled: Bool) throws(CoreError) -> ClientTLS? {
        if enrolled && tls == .on && ca == nil && serverFingerprint == nil { return nil }
        return try ClientTLS.resolve(tls: tls == .on, ca: ca, serverFingerprint: serverFingerprint, insecure: insecure, server: server)
    }
}
