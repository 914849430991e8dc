import FlockTestSupport

/// Real `flock-server serve` and `flock-edge run` processes on 127.0.0.1 for the edge's tests.
final class EdgeProcesses: ProcessGroup, @unchecked Sendable {
    /// Starts `flock-edge ARGUMENTS` under `name`.
    func startEdge(_ name: String, _ arguments: [String]) throws {
        try start(name, TestData.executable("flock-edge"), arguments)
    }
}
