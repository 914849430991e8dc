import ArgumentParser
import FlockCore
import FlockServer

/// `flock-server data`: prepare and inspect data sets.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Prepare and inspect data sets for federated experiments.",
        subcommands: [Partition.self, Balance.self]
    )

    /// `flock-server data partition`.
    struct Partition: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Split a CSV data set among simulated clients: one CSV per client and a manifest.",
            discussion: """
                Writes OUT/client-0.csv, OUT/client-1.csv, ... and then OUT/manifest.json (scheme, seed, clients, \
                and per client: file, rows, label_counts). The same data, scheme, clients and seed give \
                byte-identical files. Schemes: iid (uniform random), shards (McMahan et al. 2017: label-sorted \
                rows cut into 2 x clients shards, 2 per client), dirichlet:ALPHA (per-class proportions from \
                Dirichlet(ALPHA); small ALPHA is more skewed).
                Prints a table of client, rows, classes present and the largest class's share; with --json, the \
                manifest.

                Example: flock-server data partition --data data/mnist5k-train.csv --clients 20 --scheme shards \
                --out parts
                """
        )

        @Option(help: ArgumentHelp("Data to split: header-less CSV, label first.", valueName: "TRAIN.csv"))
        var data: String

        @Option(parsing: .unconditional, help: "Number of clients.")
        var clients: Int

        @Option(help: ArgumentHelp("Partition scheme: iid | shards | dirichlet:ALPHA.", valueName: "SCHEME"), transform: ArgumentParsers.partition)
        var scheme: PartitionScheme

        @Option(parsing: .unconditional, help: "Random seed of the split.")
        var seed: UInt64 = 0

        @Option(help: ArgumentHelp("Output folder, created when missing.", valueName: "DIR"))
        var out: String

        @Flag(help: "Print the manifest as one JSON object instead of the table.")
        var json = false

        func validate() throws {
            guard clients >= 1 else { throw ValidationError("--clients must be at least 1") }
        }

        func run() throws {
            do {
                let rows = try Dataset.loadCSV(path: data)
                let manifest = try PartitionWriter(scheme: scheme, clients: clients, seed: seed).write(
                    rows,
                    toFolder: out
                )
                if json {
                    print(JSONOutput.line(manifest))
                } else {
                    print(manifest.renderSummary())
                    print("wrote \(clients) client files and \(PartitionManifest.fileName) to \(out)")
                }
            } catch {
                StandardError.line("error: \(error.message)")
                throw ExitCode(1)
            }
        }
    }

    /// `flock-server data balance`.
    struct Balance: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per-class counts and shares of a CSV data set, and its imbalance ratio."
        )

        @Option(help: ArgumentHelp("Data: header-less CSV, label first.", valueName: "DATA.csv"))
        var data: String?

        @Argument(help: ArgumentHelp("The same as --data.", valueName: "DATA.csv"))
        var file: String?

        @Option(parsing: .unconditional, help: "Number of classes to report (default: the largest label plus one).")
        var classes: Int?

        @Flag(help: "Print one JSON object.")
        var json = false

        func validate() throws {
            if let classes, classes < 1 { throw ValidationError("--classes must be at least 1") }
            if data == nil, file == nil { throw ValidationError("give the data file: --data FILE.csv") }
            if data != nil, file != nil { throw ValidationError("give the data file once: --data FILE.csv") }
        }

        func run() throws {
            do {
                let data = try Dataset.loadCSV(path: self.data ?? file!)
                let balance = ClassBalance(labels: data.labels, classCount: classes)
                print(json ? JSONOutput.line(balance) : balance.render())
            } catch {
                StandardError.line("error: \(error.message)")
                throw ExitCode(1)
            }
        }
    }
}
