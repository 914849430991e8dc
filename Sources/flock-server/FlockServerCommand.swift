import ArgumentParser

/// `flock-server`: the Flock server.
@main
struct FlockServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flock-server",
        abstract: "The Flock server: serves federated training to edges, administers it, simulates it, benchmarks it, and prepares per-client data.",
        discussion: """
            Data files are header-less CSV: the class label (0, 1, ...) first, then the features.
            serve runs the aggregation server for flock-edge processes; admin talks to it; simulate runs the \
            same round logic with many edges in one process; registry queries the model registry that serve and \
            simulate --data-dir fill.
            """,
        version: "0.1.0",
        subcommands: [Serve.self, Init.self, Admin.self, RegistryCommand.self, Simulate.self, Bench.self, DataCommand.self]
    )
}
