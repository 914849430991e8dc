import ArgumentParser

/// `flock-server`: the Flock server.
@main
struct FlockServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flock-server",
        abstract: "The Flock server: benchmarks local training and prepares per-client data for federated experiments.",
        discussion: """
            Data files are header-less CSV: the class label (0, 1, ...) first, then the features.
            Serving edges (serve), the admin API (admin) and the model registry (registry) arrive with later \
            milestones.
            """,
        version: "0.1.0",
        subcommands: [Bench.self, DataCommand.self]
    )
}
