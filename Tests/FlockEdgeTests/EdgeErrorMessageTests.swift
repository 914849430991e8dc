import FlockTestSupport
import Foundation
import Testing

/// Golden tests of `flock-edge`'s main error messages and exit statuses, as the README documents them: a bad
/// option or value is a usage error (64) before anything runs; a bad file is one line naming it (1), a JSON
/// object under `--json`.
@Suite struct EdgeErrorMessageTests {
    static let train = TestData.path("digits-train.csv")

    /// (arguments, exit status, the first line of standard error, exactly).
    static let golden: [(arguments: [String], status: Int32, message: String)] = [
        (["train", "--data", train, "--model", "resnet"], 64,
         "Error: --model: unknown model 'resnet': use 2nn | cnn | mlp:H1,H2,... | logreg"),
        (["train", "--data", train, "--model", "mlp:0"], 64,
         "Error: --model: 'mlp:0': mlp takes positive hidden widths, e.g. mlp:128,64"),
        (["train", "--data", train, "--epochs", "-1"], 64, "Error: --epochs must be at least 1"),
        (["train", "--data", train, "--batch", "0"], 64, "Error: --batch must be at least 1"),
        (["train", "--data", train, "--lr", "-0.1"], 64, "Error: --lr must be a positive number"),
        (["train", "--data", train, "--momentum", "1.5"], 64, "Error: --momentum must be in [0, 1)"),
        (["train", "--data", train, "--optimizer", "rmsprop"], 64,
         "Error: The value 'rmsprop' is invalid for '--optimizer <optimizer>'. Please provide one of 'sgd', 'adam' or 'adamw'."),
        (["train", "--data", train, "--scale", "log"], 64,
         "Error: The value 'log' is invalid for '--scale <scale>'. Please provide one of 'max', 'standardize' or 'none'."),
        (["train", "--data", train, "--epochs", "two"], 64, "Error: The value 'two' is invalid for '--epochs <epochs>'"),
        (["train", "--data", train, "--patience", "2"], 64, "Error: --patience needs --eval (early stopping watches the eval accuracy)"),
        (["train", "--data", "/nonexistent/train.csv"], 1, "error: /nonexistent/train.csv: no such file"),
        (["evaluate", "--model", "/nonexistent/m.flock", "--data", train], 1, "error: /nonexistent/m.flock: no such file"),
        // Under --json an error is one JSON object on standard error.
        (["evaluate", "--model", "/nonexistent/m.flock", "--data", train, "--json"], 1, #"{"code":1,"error":"/nonexistent/m.flock: no such file"}"#),
        (["train", "--data", "/nonexistent/train.csv", "--json"], 1, #"{"code":1,"error":"/nonexistent/train.csv: no such file"}"#),
        (["predict", "--model", "/nonexistent/m.flock", "--data", train, "--json"], 1, #"{"code":1,"error":"/nonexistent/m.flock: no such file"}"#),
        (["data", "balance", "--data", "/nonexistent/d.csv", "--json"], 1, #"{"code":1,"error":"/nonexistent/d.csv: no such file"}"#),
        (["run", "--data", train, "--holdout-fraction", "-0.2"], 64, "Error: --holdout-fraction must be in [0, 0.5]"),
        (["run", "--data", train, "--holdout", "0.7"], 64, "Error: --holdout-fraction must be in [0, 0.5]"),
        (["data", "balance"], 64, "Error: give the data file: --data FILE.csv"),
        (["data", "balance", train, "--data", train], 64, "Error: give the data file once: --data FILE.csv"),
        (["run", "--data", train, "--threads", "0"], 64, "Error: --threads must be at least 1"),
        (["run", "--data", train, "--id", "a b"], 64, "Error: --id: use 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'"),
    ]

    @Test(arguments: golden.indices)
    func mainErrorMessages(index: Int) throws {
        let (arguments, status, message) = Self.golden[index]
        let result = try TestData.run(TestData.executable("flock-edge"), arguments)
        #expect(result.status == status, "\(arguments): \(result.error)")
        #expect(result.error.split(separator: "\n").first.map(String.init) == message, "\(arguments)")
        #expect(result.output.isEmpty, "\(arguments)")
    }

    /// Choices are listed by --help; the examples name files as `flock-server data partition` writes them.
    @Test func helpListsTheChoicesAndTheFilesPartitionWrites() throws {
        let train = try TestData.run(TestData.executable("flock-edge"), ["train", "--help"]).output
        #expect(train.contains("values: sgd, adam, adamw"), "\(train)")
        #expect(train.contains("values: max, standardize, none"), "\(train)")
        let run = try TestData.run(TestData.executable("flock-edge"), ["run", "--help"]).output
        #expect(run.contains("client-0.csv") && !run.contains("client-000.csv"), "\(run)")
        #expect(run.contains("--state-dir"))
        let predict = try TestData.run(TestData.executable("flock-edge"), ["predict", "--help"]).output
        #expect(predict.contains("--data"), "\(predict)")
    }
}
