import FlockCore
import FlockEdge
import FlockTestSupport
import Foundation
import Testing

/// The real `flock-edge` binary as a user runs it: help, JSON output, one-line errors naming file and line
/// with exit status 1, and resuming after a kill -9.
@Suite struct EdgeCommandTests {
    static let binary = TestData.executable("flock-edge")

    static func run(_ arguments: [String]) throws -> TestData.ProcessResult {
        try TestData.run(binary, arguments)
    }

    /// Writes a CSV file with the given lines into a fresh folder.
    static func file(_ lines: [String]) throws -> String {
        let path = TestData.temporaryFolder() + "/data.csv"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test(arguments: [[], ["train"], ["evaluate"], ["predict"], ["data", "balance"]])
    func everyCommandHasHelp(command: [String]) throws {
        let result = try Self.run(command + ["--help"])
        #expect(result.status == 0)
        #expect(result.output.contains("USAGE:"))
        #expect(result.output.contains("OVERVIEW:"))
    }

    @Test func trainHelpListsEveryDocumentedOption() throws {
        let help = try Self.run(["train", "--help"]).output
        for option in ["--data", "--eval", "--model", "--epochs", "--batch", "--lr", "--optimizer", "--momentum", "--schedule", "--scale", "--seed", "--save", "--checkpoint", "--json", "--patience", "--clip-norm"] {
            #expect(help.contains(option), "train --help lacks \(option)")
        }
    }

    static let digits = ["--data", TestData.path("digits-train.csv"), "--eval", TestData.path("digits-test.csv")]

    @Test func jsonOutputHasOneObjectPerEpochAndAFinalSummary() throws {
        let result = try Self.run(["train"] + Self.digits + ["--model", "mlp:32", "--epochs", "3", "--scale", "standardize", "--json"])
        #expect(result.status == 0, "\(result.error)")
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        let objects = try lines.map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(objects.prefix(3).map { $0["epoch"] as? Int } == [1, 2, 3])
        let final = try #require(objects.last)
        for key in ["accuracy", "loss", "epochs", "samples_per_second", "parameters"] {
            #expect(final[key] != nil, "final JSON lacks \(key)")
        }
        #expect((final["accuracy"] as? Double ?? 0) > 0.85)
        #expect(final["parameters"] as? Int == 64 * 32 + 32 + 32 * 10 + 10)
    }

    @Test func savedModelEvaluatesAndPredictsWithItsScaling() throws {
        let folder = TestData.temporaryFolder()
        let model = folder + "/digits.flock"
        let trained = try Self.run(["train"] + Self.digits + ["--model", "logreg", "--epochs", "4", "--save", model, "--json"])
        #expect(trained.status == 0, "\(trained.error)")
        let final = try #require(JSONSerialization.jsonObject(with: Data(trained.output.split(separator: "\n").last!.utf8)) as? [String: Any])
        let evaluated = try Self.run(["evaluate", "--model", model, "--data", TestData.path("digits-test.csv"), "--json"])
        #expect(evaluated.status == 0)
        let metrics = try #require(JSONSerialization.jsonObject(with: Data(evaluated.output.utf8)) as? [String: Any])
        #expect(metrics["accuracy"] as? Double == final["accuracy"] as? Double)
        let predicted = try Self.run(["predict", "--model", model, "--data", TestData.path("digits-test.csv")])
        #expect(predicted.output.split(separator: "\n").count == 359)
    }

    /// A saved model answers feature-only rows with --unlabelled, exactly as it answers the same rows with their
    /// labels; --json gives each row's number and every class's probability, and evaluate --json the model's hash.
    @Test func savedModelAnswersUnlabelledRowsAndJSONCarriesRowsProbabilitiesAndHash() throws {
        let folder = TestData.temporaryFolder()
        let model = folder + "/digits.flock"
        let trained = try Self.run(["train"] + Self.digits + ["--model", "logreg", "--epochs", "2", "--save", model, "--json"])
        #expect(trained.status == 0, "\(trained.error)")
        let summary = try #require(JSONSerialization.jsonObject(with: Data(trained.output.split(separator: "\n").last!.utf8)) as? [String: Any])
        let hash = try #require(summary["model_hash"] as? String)

        let labelled = try String(contentsOfFile: TestData.path("digits-test.csv"), encoding: .utf8).split(separator: "\n")
        let unlabelled = folder + "/features.csv"
        try (labelled.map { $0.split(separator: ",").dropFirst().joined(separator: ",") }.joined(separator: "\n") + "\n")
            .write(toFile: unlabelled, atomically: true, encoding: .utf8)

        func predictions(_ arguments: [String]) throws -> [[String: Any]] {
            let result = try Self.run(["predict", "--model", model, "--json"] + arguments)
            #expect(result.status == 0, "\(result.error)")
            let object = try #require(JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
            #expect(object["hash"] as? String == hash)
            return try #require(object["predictions"] as? [[String: Any]])
        }
        let withLabels = try predictions(["--data", TestData.path("digits-test.csv")])
        let withoutLabels = try predictions(["--data", unlabelled, "--unlabelled"])
        #expect(withoutLabels.count == labelled.count)
        #expect(withoutLabels.map { $0["label"] as? Int } == withLabels.map { $0["label"] as? Int })
        #expect(withoutLabels.map { $0["row"] as? Int } == Array(1...labelled.count))
        for answer in withoutLabels {
            let probabilities = try #require(answer["probabilities"] as? [Double])
            let label = try #require(answer["label"] as? Int)
            #expect(probabilities.count == 10)
            #expect(abs(probabilities.reduce(0, +) - 1) < 1e-9)
            #expect(probabilities[label] == answer["probability"] as? Double)
            #expect(probabilities.max() == probabilities[label])
        }
        // The text form answers the same rows.
        let text = try Self.run(["predict", "--model", model, "--data", unlabelled, "--unlabelled"])
        #expect(text.output.split(separator: "\n").map { Int($0.split(separator: "\t")[1]) } == withLabels.map { $0["label"] as? Int })

        // Feature-only rows without --unlabelled, and labelled rows with it, are refused with a hint.
        let missing = try Self.run(["predict", "--model", model, "--data", unlabelled])
        #expect(missing.status == 1)
        #expect(missing.error == "error: \(unlabelled): rows have 63 features but the model expects 64 features; if the rows have no label column, add --unlabelled\n")
        let extra = try Self.run(["predict", "--model", model, "--data", TestData.path("digits-test.csv"), "--unlabelled"])
        #expect(extra.status == 1)
        #expect(extra.error.contains("rows have 65 values but the model expects 64 features; if the first column is a label, leave out --unlabelled"))

        let evaluated = try Self.run(["evaluate", "--model", model, "--data", TestData.path("digits-test.csv"), "--json"])
        let metrics = try #require(JSONSerialization.jsonObject(with: Data(evaluated.output.utf8)) as? [String: Any])
        #expect(metrics["hash"] as? String == hash)
        #expect(metrics["model"] as? String == "logreg")
        #expect(metrics["accuracy"] as? Double == summary["accuracy"] as? Double)
    }

    /// Training data is `--data` in every command; `data balance` also takes the file as its argument.
    @Test func dataBalanceTakesTheFileAsDataOrAsItsArgument() throws {
        let named = try Self.run(["data", "balance", "--data", TestData.path("digits-train.csv"), "--json"])
        let positional = try Self.run(["data", "balance", TestData.path("digits-train.csv"), "--json"])
        #expect(named.status == 0 && positional.status == 0, "\(named.error)\(positional.error)")
        #expect(!named.output.isEmpty && named.output == positional.output)
    }

    @Test func tamperedModelIsRefused() throws {
        let folder = TestData.temporaryFolder()
        let model = folder + "/m.flock"
        _ = try Self.run(["train"] + Self.digits + ["--model", "logreg", "--epochs", "1", "--save", model])
        var bytes = TestData.bytes(model)
        bytes[bytes.count / 2] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: model))
        let result = try Self.run(["evaluate", "--model", model, "--data", TestData.path("digits-test.csv")])
        #expect(result.status == 1)
        #expect(result.error.contains("content hash mismatch"))
    }

    /// Bad input: a one-line error that names the file (and line), exit status 1, nothing printed to stdout.
    @Test func badDataGetsAOneLineErrorWithFileAndLine() throws {
        let good = (0..<64).map { _ in "1" }.joined(separator: ",")
        let cases: [(lines: [String], expected: String)] = [
            (["3,\(good)", "4,1,2,3"], ":2: expected 65 values, found 4"),
            (["3,\(good)", "5,\(good)", "2,\(good.dropLast(1))x"], ":3: column 65: 'x' is not a number"),
            (["3,\(good)", "-1,\(good)"], ":2:"),
        ]
        for (lines, expected) in cases {
            let path = try Self.file(lines)
            let result = try Self.run(["train", "--data", path, "--model", "logreg", "--epochs", "1"])
            #expect(result.status == 1)
            #expect(result.error.contains(path + expected), "stderr was: \(result.error)")
            #expect(result.error.split(separator: "\n").count == 1, "stderr was: \(result.error)")
        }
        let missing = try Self.run(["train", "--data", "/nonexistent/train.csv"])
        #expect(missing.status == 1)
        #expect(missing.error.contains("/nonexistent/train.csv: no such file"))
    }

    @Test func labelsOutOfRangeAndFeatureCountsThatDoNotFitAreRefused() throws {
        let row = (0..<64).map { _ in "2" }.joined(separator: ",")
        let eval = try Self.file(["12,\(row)"])
        let outOfRange = try Self.run(["train", "--data", TestData.path("digits-train.csv"), "--eval", eval, "--epochs", "1"])
        #expect(outOfRange.status == 1)
        #expect(outOfRange.error.contains("label 12 is out of range 0..9"), "\(outOfRange.error)")
        let narrow = try Self.file(["1,\(row.dropLast(2))"])
        let mismatch = try Self.run(["train", "--data", TestData.path("digits-train.csv"), "--eval", narrow, "--epochs", "1"])
        #expect(mismatch.status == 1)
        #expect(mismatch.error.contains("rows have 63 features but the model expects 64"), "\(mismatch.error)")
        // 50 features are no square image: the cnn preset cannot take them.
        let odd = try Self.file(["1," + (0..<50).map { _ in "3" }.joined(separator: ","), "0," + (0..<50).map { _ in "1" }.joined(separator: ",")])
        let cnn = try Self.run(["train", "--data", odd, "--model", "cnn", "--epochs", "1"])
        #expect(cnn.status == 1)
        #expect(cnn.error.contains("the cnn preset needs square single-channel images"), "\(cnn.error)")
    }

    @Test func badOptionsAreUsageErrors() throws {
        for arguments in [
            ["--epochs", "0"], ["--epochs", "-1"], ["--optimizer", "rmsprop"], ["--scale", "log"], ["--schedule", "linear"], ["--patience", "2"],
            ["--model", "resnet"], ["--model", "mlp:0"], ["--lr", "-0.1"], ["--momentum", "-0.5"], ["--batch", "-3"],
        ] {
            let result = try Self.run(["train", "--data", TestData.path("digits-train.csv")] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.error)")
            #expect(result.error.contains("Error:"))
        }
    }

    @Test func badCrashPointsAreUsageErrorsNamingTheAcceptedForms() throws {
        for point in ["share-keys", "share-keys@0", "unmask@2", "masked-input@x", "@3"] {
            let result = try Self.run(["run", "--data", TestData.path("digits-train.csv"), "--crash-at", point])
            #expect(result.status == 64, "\(point): \(result.error)")
            #expect(result.error.contains("share-keys or masked-input"), "\(point): \(result.error)")
        }
        #expect(try CrashPoint(parsing: "masked-input@12") == CrashPoint(phase: .maskedInput, round: 12))
    }

    /// kill -9 in the middle of a run, start it again with the same checkpoint folder, and it ends in exactly
    /// the weights of a run that was never interrupted.
    @Test func killedRunResumesToTheSameWeights() throws {
        let folder = TestData.temporaryFolder()
        let common = ["train", "--data", TestData.path("mnist5k-train.csv"), "--model", "2nn", "--epochs", "6", "--threads", "1", "--momentum", "0.9", "--json"]

        let straight = try Self.run(common + ["--save", folder + "/straight.flock"])
        #expect(straight.status == 0, "\(straight.error)")

        let checkpoints = folder + "/ckpt"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = common + ["--checkpoint", checkpoints, "--save", folder + "/resumed.flock"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Epoch 1's JSON line is printed after its checkpoint is written: once it is out, the run is in epoch 2.
        // Reading blocks until the line comes or the process ends, however fast or slow the machine is.
        var printed = Data()
        while !printed.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            printed.append(chunk)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the run finished before it could be killed")
        let saved = try #require(try TrainingCheckpoint.read(fromFolder: checkpoints))
        #expect(saved.epoch >= 1 && saved.epoch < 6)

        let resumed = try Self.run(common + ["--checkpoint", checkpoints, "--save", folder + "/resumed.flock"])
        #expect(resumed.status == 0, "\(resumed.error)")
        let final = try #require(JSONSerialization.jsonObject(with: Data(resumed.output.split(separator: "\n").last!.utf8)) as? [String: Any])
        #expect((final["resumed_from_epoch"] as? Int ?? 0) >= 1)
        #expect(try ModelFile.read(from: folder + "/resumed.flock").file.parameters == ModelFile.read(from: folder + "/straight.flock").file.parameters)
    }
}
