import FlockCore
import FlockTestSupport
import Foundation
import Testing

/// A new user's own tabular data, federated by hand as the docs show it: scikit-learn's wine set (13 features on
/// scales from 0.1 to 1,680, 3 classes) split over three edge processes, a server that infers the rows' shape
/// from its holdout and fits a standardization from the edges' feature moments in a first statistics round under
/// secure aggregation. (Accuracy against central training, over many seeds, is `TabularStandardizationTests`': on
/// 53 test rows one run's accuracy moves by several points with the seed.)
@Suite(.serialized) struct TabularFederationTests {
    @Test func winePartitionedOverThreeEdgesIsStandardizedFromTheirFeatureMomentsAndLearns() throws {
        let fleet = Fleet()
        let parts = fleet.folder + "/parts"
        let partition = try TestData.run(TestData.executable("flock-server"), [
            "data", "partition", "--data", TestData.path("wine-train.csv"), "--clients", "3", "--scheme", "iid", "--out", parts,
        ])
        #expect(partition.status == 0, "\(partition.error)")

        let server = try fleet.startServer([
            "--model", "logreg", "--holdout", TestData.path("wine-test.csv"), "--scale", "standardize", "--rounds", "20", "--epochs", "2",
            "--min-clients", "3", "--heartbeat", "0.3",
        ])
        // No rows held out: the statistics cover every training row, to compare with the file's.
        for i in 0..<3 {
            try fleet.startEdge("edge-\(i)", server: server, data: parts + "/client-\(i).csv", extra: ["--holdout-fraction", "0"])
        }
        try fleet.wait("20 training rounds") { try fleet.status()["completed_rounds"] as? Int == 20 }

        let rounds = try fleet.rounds()
        // Round 1 gathered the feature moments of all three edges; it made no model version.
        #expect(rounds.first?["kind"] as? String == "statistics" && rounds.first?["participants"] as? Int == 3)
        #expect(rounds.first?["model_version"] as? Int == 0)
        #expect(fleet.log("server").contains("feature statistics of 125 rows from 3 edges"))
        #expect(rounds.dropFirst().allSatisfy { $0["kind"] == nil })
        let accuracy = try #require(rounds.last?["accuracy"] as? Double)
        #expect(accuracy >= 0.9, "federated accuracy \(accuracy)")
        // The server inferred 13 features and 3 classes from its holdout: the model file says so.
        let model = try ModelFile.decode(bytes: TestData.bytes(fleet.dataDirectory + "/global.flockmdl"), source: "global.flockmdl").file
        #expect(model.spec.inputFeatures == 13 && model.spec.classCount == 3)
        guard case .standardize(let mean, _) = model.scaling else {
            Issue.record("the served model is not standardized: \(model.scaling)")
            return
        }
        // The fitted mean of the first feature (alcohol) is the training rows' mean.
        let alcohol = try String(contentsOfFile: TestData.path("wine-train.csv"), encoding: .utf8).split(separator: "\n")
            .map { Double($0.split(separator: ",")[1])! }
        #expect(abs(Double(mean[0]) - alcohol.reduce(0, +) / Double(alcohol.count)) < 1e-4)
    }

    @Test func unscaledDataWarnsOfALossFarAboveChance() throws {
        let fleet = Fleet()
        let parts = fleet.folder + "/parts"
        _ = try TestData.run(TestData.executable("flock-server"), [
            "data", "partition", "--data", TestData.path("wine-train.csv"), "--clients", "2", "--scheme", "iid", "--out", parts,
        ])
        // Rows as they are: the loss explodes on features in the hundreds.
        let server = try fleet.startServer([
            "--model", "logreg", "--holdout", TestData.path("wine-test.csv"), "--input-scale", "0", "--rounds", "3", "--lr", "0.5",
            "--min-clients", "2", "--heartbeat", "0.3",
        ])
        for i in 0..<2 { try fleet.startEdge("edge-\(i)", server: server, data: parts + "/client-\(i).csv") }
        try fleet.wait("3 rounds") { try fleet.status()["completed_rounds"] as? Int == 3 }
        #expect(fleet.log("server").contains("the features are probably not scaled for this model; serve with --scale standardize"))
    }
}
