import FlockCore
import FlockTestSupport
import Testing

/// Paired counts of two real models on the real digits data agree with each model's own evaluation.
@Suite struct PairedComparisonTests {
    @Test func theCellsAndLossSumsAgreeWithEachModelsOwnEvaluation() throws {
        var data = try TestData.load("digits-test.csv")
        FeatureScaling.max(16).apply(to: &data)
        let spec = try ModelSpec.preset("2nn", inputFeatures: data.featureCount, classCount: 10)
        let served = try Model(spec: spec, seed: 1)
        let compared = try Model(spec: spec, seed: 2)
        // Make one of them useful so that the cells are not all alike.
        var train = try TestData.load("digits-train.csv")
        FeatureScaling.max(16).apply(to: &train)
        try Trainer(model: compared, config: TrainingConfig(epochs: 2, batchSize: 32, learningRate: 0.1, seed: 3), training: train).run()

        var c = PairedComparison()
        c.add(served: served, compared: compared, data: data)
        let a = served.evaluate(data)
        let b = compared.evaluate(data)
        let n = Double(data.count)
        #expect(c.labelledPairs == data.count && c.unlabelled == 0)
        #expect(Double(c.bothRight + c.onlyServedRight) == (a.accuracy * n).rounded())
        #expect(Double(c.bothRight + c.onlyComparedRight) == (b.accuracy * n).rounded())
        #expect(c.onlyComparedRight > c.onlyServedRight)
        #expect(abs(c.lossDifferenceSum / n - (b.loss - a.loss)) < 1e-4)
        #expect(c.servedErrors == 0 && c.comparedErrors == 0)
        #expect(c.servedLatencyMs.count == 1 && c.comparedLatencyMs.count == 1)

        // Unlabelled rows count towards agreement only.
        var unlabelled = data
        unlabelled.labels = [Int32](repeating: -1, count: data.count)
        var u = PairedComparison()
        u.add(served: served, compared: compared, data: unlabelled)
        #expect(u.unlabelled == data.count && u.labelledPairs == 0 && u.agreements == c.agreements)
        #expect(PairedComparison.percentile(0.5, of: [3, 1, 2]) == 2 && PairedComparison.percentile(0.99, of: [3, 1, 2]) == 3)
    }
}
