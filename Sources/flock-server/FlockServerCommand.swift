import ArgumentParser

/// `flock-server`: the Flock server.
@main
struct FlockServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flock-server",
        abstract: "The Flock server: simulates federated training, benchmarks local training, and prepares per-client data.",
        discussion: """
            Data files are header-less CSV: the class label (0, 1, ...) first, then the features.
            Serving edges over the network (serve), the admin API (admin) and the model registry (registry) \
            arrive with later milestones; simulate runs the federated rounds in one process today.
            """,
        version: "0.1.0",
        subcommands: [Simulate.self, Bench.self, DataCommand.self]
    )
}
