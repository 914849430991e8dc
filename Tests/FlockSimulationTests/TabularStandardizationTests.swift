import FlockCore
import FlockTestSupport
import Foundation
import Testing

/// Federated training on tabular data whose features live on very different scales (scikit-learn's wine: 13
/// features from 0.1 to 1,680), standardized from the edges' feature moments by the served coordinator's
/// statistics round (`simulate --transport grpc --scale standardize`: the serve and edge code over gRPC's
/// in-process transport, secure aggregation on), against central training with a central standardization.
///
/// One run's accuracy on the 53 test rows moves by up to 6 points with the seed (partition, initial weights,
/// shuffling) for both, so the comparison is of means over eight seeds.
@Suite(.serialized) struct TabularStandardizationTests {
    static let seeds: [UInt64] = Array(0..<8)

    static func lastJSON(_ output: String) throws -> [String: Any] {
        let line = try #require(output.split(separator: "\n").last)
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test func federatedStandardizationReachesCentralAccuracyWithinTwoPoints() throws {
        var federated = [Double]()
        var central = [Double]()
        for seed in Self.seeds {
            let run = try TestData.run(TestData.executable("flock-server"), [
                "simulate", "--train", TestData.path("wine-train.csv"), "--eval", TestData.path("wine-test.csv"), "--clients", "3",
                "--fraction", "1", "--rounds", "20", "--epochs", "2", "--model", "logreg", "--scale", "standardize", "--transport", "grpc",
                "--seed", String(seed), "--json",
            ])
            #expect(run.status == 0, "\(run.error)")
            federated.append(try #require(try Self.lastJSON(run.output)["accuracy"] as? Double))
            let train = try TestData.run(TestData.executable("flock-edge"), [
                "train", "--data", TestData.path("wine-train.csv"), "--eval", TestData.path("wine-test.csv"), "--model", "logreg",
                "--scale", "standardize", "--epochs", "20", "--seed", String(seed), "--json",
            ])
            #expect(train.status == 0, "\(train.error)")
            central.append(try #require(try Self.lastJSON(train.output)["accuracy"] as? Double))
        }
        let federatedMean = federated.reduce(0, +) / Double(federated.count)
        let centralMean = central.reduce(0, +) / Double(central.count)
        #expect(federatedMean >= centralMean - 0.02, "federated \(federated), central \(central)")

        // The same federation without standardization (every feature divided by the largest value, 1,680) does not
        // come close: the scales hide the small features.
        let unscaled = try TestData.run(TestData.executable("flock-server"), [
            "simulate", "--train", TestData.path("wine-train.csv"), "--eval", TestData.path("wine-test.csv"), "--clients", "3",
            "--fraction", "1", "--rounds", "20", "--epochs", "2", "--model", "logreg", "--scale", "max", "--json",
        ])
        #expect(try Self.lastJSON(unscaled.output)["accuracy"] as? Double ?? 1 < centralMean - 0.2)
    }
}
