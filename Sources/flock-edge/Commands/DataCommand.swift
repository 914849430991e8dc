import ArgumentParser
import FlockCore
import FlockEdge

/// `flock-edge data`: look at local data.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Inspect local data sets.",
        subcommands: [Balance.self])

    /// `flock-edge data balance`.
    struct Balance: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per-class counts and shares of a CSV data set, and its imbalance ratio.")

        @Option(help: ArgumentHelp("Data: header-less CSV, label first.", valueName: "DATA.csv"))
        var data: String?

        @Argument(help: ArgumentHelp("The same as --data.", valueName: "DATA.csv"))
        var file: String?

        @Option(help: "Number of classes to report (default: the largest label plus one).")
        var classes: Int?

        @Flag(help: "Print one JSON object (an error: {\"error\": …, \"code\": 1} on standard error).")
        var json = false

        func validate() throws {
            if data == nil, file == nil { throw ValidationError("give the data file: --data FILE.csv") }
            if data != nil, file != nil { throw ValidationError("give the data file once: --data FILE.csv") }
        }

        func run() throws {
            do {
                let data = try Dataset.loadCSV(path: self.data ?? file!)
                let balance = ClassBalance(labels: data.labels, classCount: classes)
                print(json ? JSONOutput.line(balance) : balance.render())
            } catch {
                throw failure(error.message, json: json)
            }
        }
    }
}
