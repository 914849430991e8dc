import ArgumentParser

/// `flock-edge`: the Flock edge client.
@main
struct FlockEdgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flock-edge",
        abstract: "The Flock edge client: takes part in federated training, and trains, evaluates and predicts with FlockCore on this device's data.",
        discussion: """
            Data files are header-less CSV: the class label (0, 1, ...) first, then the features.
            run takes part in federated training with a flock-server; the other commands work on this machine alone.
            """,
        version: "0.1.0",
        subcommands: [Enrol.self, Run.self, Train.self, Evaluate.self, Predict.self, DataCommand.self]
    )
}
