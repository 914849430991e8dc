import ArgumentParser
import FlockCore
import FlockServer
import Foundation

/// `flock-server init`: the server's CA and TLS certificate in its data directory.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create the server's certificate authority and TLS certificate in its data directory.",
        discussion: """
            Writes DATA_DIR/tls/ca.pem and ca.key (the CA: it issues the server's certificate and the enrolled \
            devices' certificates; the key is mode 0600 and never leaves this machine) and DATA_DIR/tls/server.pem \
            and server.key (valid for every --host, and for localhost, 127.0.0.1 and ::1). Give edges the CA \
            certificate: flock-edge run|enrol --ca ca.pem, or pin the server certificate with --server-fingerprint.

            serve creates the same files on its first start when they are missing (for the address it listens on); \
            run init when edges reach the server by a name or address serve cannot know (a DNS name, a public \
            address behind NAT). An existing CA is kept unless --force: a new CA invalidates every enrolled device's \
            certificate. A running serve picks up the new server certificate at its next connection, without a \
            restart.

            Example: flock-server init --data-dir ./flock-data --host flock.example.org --host 192.0.2.10
            """)

    @Option(name: .customLong("data-dir"), help: ArgumentHelp("The server's data directory. [default: ./flock-data]", valueName: "DIR"))
    var dataDir = "./flock-data"

    @Option(
        name: .customLong("host"),
        help: ArgumentHelp("A DNS name or IP address edges reach the server by (repeat for several).", valueName: "NAME_OR_IP"))
    var hosts: [String] = []

    @Flag(help: "Replace an existing CA (every device certificate it issued stops being trusted; devices enrol again).")
    var force = false

    @Flag(name: .customLong("renew"), help: "Keep the existing CA and issue a new server certificate only (for new host names, or before it expires).")
    var renew = false

    func validate() throws {
        if hosts.isEmpty { throw ValidationError("give at least one --host: the DNS name or IP address edges use to reach this server") }
        if force && renew { throw ValidationError("--force makes a new CA, --renew keeps it: give one of them") }
        for host in hosts where !Self.isHostName(host) {
            throw ValidationError("--host '\(host)': give a DNS name (flock.example.org) or an IP address (192.0.2.10, 2001:db8::1)")
        }
    }

    /// A DNS name or an IP literal.
    static func isHostName(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 { return true }
        return !host.isEmpty && host.count <= 253 && !host.hasPrefix("-") && !host.hasPrefix(".")
            && host.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }
    }

    func run() throws {
        if CertificateAuthority.exists(inDataDirectory: dataDir) && !force && !renew {
            StandardError.line(
                "error: \(CertificateAuthority.certificatePath(inDataDirectory: dataDir)) exists: --renew issues a new server certificate with the same CA; --force replaces the CA (every enrolled device must enrol again)")
            throw ExitCode(1)
        }
        do {
            umask(0o077)
            let created = try ServerTLSFiles.create(dataDirectory: dataDir, hosts: hosts, keepExistingCA: renew)
            created.lines.forEach { print($0) }
        } catch {
            StandardError.line("error: \(error.message)")
            throw ExitCode(1)
        }
    }
}
