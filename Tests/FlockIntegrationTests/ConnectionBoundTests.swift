import FlockCore
import FlockTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A raw TCP connection to the server, for what no gRPC client does: connecting and saying nothing, or only
/// the HTTP/2 preface.
final class RawConnection {
    let descriptor: Int32

    /// Connects to `127.0.0.1:port`.
    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw CoreError(.io, "cannot connect to port \(port): errno \(errno)") }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    deinit { close(descriptor) }

    /// Sends the HTTP/2 client preface and nothing more.
    func sendPreface() {
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        _ = preface.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// True once the server has closed the connection (reads give end of file or a reset), reading and dropping
    /// whatever the server wrote before.
    var closedByServer: Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n > 0 { continue }
            if n == 0 { return true }
            return errno != EAGAIN && errno != EWOULDBLOCK
        }
    }
}

/// The server bounds its connections: silent and preface-only connections are closed after an edge timeout
/// without a call, and connections beyond `max_connections` are closed as soon as they are accepted.
@Suite(.serialized) struct ConnectionBoundTests {
    static func port(_ address: String) throws -> Int {
        try #require(Int(address.split(separator: ":").last ?? ""))
    }

    @Test func silentAndPrefaceOnlyConnectionsAreClosedAfterAnEdgeTimeout() throws {
        let fleet = Fleet()
        // Plaintext: the raw connections speak HTTP/2 without TLS.
        let server = try fleet.startServer(["--tls", "off", "--edge-timeout", "1", "--heartbeat", "0.5"])
        let silent = try RawConnection(port: Self.port(server))
        let preface = try RawConnection(port: Self.port(server))
        preface.sendPreface()
        try fleet.wait("the server to close both idle connections", seconds: 60) { silent.closedByServer && preface.closedByServer }
        // The server still serves.
        #expect(try fleet.status()["state"] as? String == "waiting")
    }

    @Test func connectionsBeyondTheBoundAreClosedAtOnce() throws {
        let fleet = Fleet()
        let config = fleet.folder + "/bound.toml"
        try "max_connections = 3\n".write(toFile: config, atomically: true, encoding: .utf8)
        // A long edge timeout: connections within the bound stay open for the whole test.
        let server = try fleet.startServer(["--tls", "off", "--config", config, "--edge-timeout", "600", "--heartbeat", "1"])
        // Five connections at once: accepts run on several event loops, so which two are beyond the bound varies;
        // that exactly two are closed does not.
        let connections = try (0..<5).map { _ in try RawConnection(port: Self.port(server)) }
        for connection in connections { connection.sendPreface() }
        var closed = Set<Int>()
        try fleet.wait("the server to close the two connections beyond the bound", seconds: 60) {
            for (i, connection) in connections.enumerated() where !closed.contains(i) && connection.closedByServer { closed.insert(i) }
            return closed.count >= 2
        }
        #expect(closed.count == 2)
        let within = connections.indices.filter { !closed.contains($0) }.map { connections[$0] }
        #expect(within.allSatisfy { !$0.closedByServer })
        // Once one closes, a new connection is admitted again (admin calls are connections too).
        within.forEach { _ = shutdown($0.descriptor, Int32(SHUT_RDWR)) }
        try fleet.wait("admin status through a freed slot", seconds: 60) { try fleet.status()["state"] as? String == "waiting" }
    }
}
