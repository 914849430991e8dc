import FlockTestSupport

/// Real `flock-server serve` and `flock-edge run` processes on 127.0.0.1 for the edge's tests.
final class EdgeProcesses: ProcessGroup, @unchecked Sendable {
    /// Starts `flock-edge ARGUMENTS` under `name` (`run` with `--ca` of the server started last, unless the
    /// arguments say how to reach the server).
    func startEdge(_ name: String, _ arguments: [String]) throws {
        try start(name, TestData.executable("flock-edge"), arguments + (arguments.first == "run" ? edgeTrust(arguments) : []))
    }
}
