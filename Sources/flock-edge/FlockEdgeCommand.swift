import ArgumentParser

/// `flock-edge`: the Flock edge client.
@main
struct FlockEdgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flock-edge",
        abstract: "The Flock edge client: trains, evaluates and predicts with FlockCore on this device's data.",
        discussion: """
            Data files are header-less CSV: the class label (0, 1, ...) first, then the features.
            Federated participation (connecting to a flock-server) arrives with the federated-rounds milestone.
            """,
        version: "0.1.0",
        subcommands: [Train.self, Evaluate.self, Predict.self, DataCommand.self]
    )
}
