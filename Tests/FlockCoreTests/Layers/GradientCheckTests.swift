import FlockCore
import FlockTestSupport
import Testing

/// Backward passes checked against central finite differences of the loss, for every layer kind and the
/// loss itself, on seeded random inputs.
@Suite struct GradientCheckTests {
    /// Compares the analytic gradient with (L(w + h e_i) - L(w - h e_i)) / 2h on `samples` coordinates
    /// spread over the whole parameter vector (every layer's weights and biases are visited).
    static func check(_ spec: ModelSpec, rows: Int = 3, training: Bool = false, samples: Int = 120) throws {
        let model = try Model(spec: spec, seed: 7)
        let data = TestData.random(rows: rows, features: spec.inputFeatures, classes: spec.classCount, seed: 11)
        var rng = SeededGenerator(seed: 99)
        let (_, gradient) = model.lossAndGradient(features: data.features, labels: data.labels, training: training, rng: &rng)
        let base = model.parameterVector()
        let h: Float = 1e-3
        // Visit every parameter tensor: a few coordinates from each view.
        var coordinates = [Int]()
        let perView = max(2, samples / max(1, model.parameterViews.count))
        var pick = SeededGenerator(seed: 5)
        for view in model.parameterViews {
            for _ in 0..<min(perView, view.count) { coordinates.append(view.offset + pick.nextIndex(below: view.count)) }
        }
        func loss(_ values: [Float]) throws -> Double {
            try model.setParameters(values)
            var r = SeededGenerator(seed: 99)
            return model.lossAndGradient(features: data.features, labels: data.labels, training: training, rng: &r).loss
        }
        let center = try loss(base)
        var worst = 0.0
        var checked = 0
        for i in coordinates {
            var plus = base
            plus[i] += h
            var minus = base
            minus[i] -= h
            let lp = try loss(plus), lm = try loss(minus)
            // A ReLU or max-pool kink inside [w - h, w + h] makes the two one-sided slopes disagree; the
            // central difference is meaningless there (CS231n, "gradient checks: kinks"), so skip it.
            let right = (lp - center) / Double(h), left = (center - lm) / Double(h)
            if abs(right - left) > 0.05 * max(abs(right), abs(left)) + 2e-3 { continue }
            let numeric = (lp - lm) / Double(2 * h)
            let analytic = Double(gradient[i])
            let error = abs(numeric - analytic) / max(1e-2, abs(numeric) + abs(analytic))
            worst = max(worst, error)
            checked += 1
            #expect(error < 1e-2, "parameter \(i): numeric \(numeric) vs analytic \(analytic)")
        }
        // Kinks are rare: almost every sampled coordinate must have been compared.
        #expect(checked * 10 >= coordinates.count * 9, "only \(checked) of \(coordinates.count) coordinates were kink-free")
        try model.setParameters(base)
        #expect(worst < 1e-2)
    }

    @Test func denseAndReLU() throws {
        try Self.check(ModelSpec(inputShape: [6], classCount: 4, layers: [.dense(units: 5), .relu, .dense(units: 7), .relu, .dense(units: 4)]))
    }

    @Test func softmaxCrossEntropyThroughLogisticRegression() throws {
        try Self.check(ModelSpec(inputShape: [5], classCount: 3, layers: [.dense(units: 3)]))
    }

    @Test func conv2DWithStrideAndPadding() throws {
        // The second convolution's dL/dx feeds the first one's weights, so both directions are checked.
        try Self.check(ModelSpec(
            inputShape: [2, 7, 7], classCount: 3,
            layers: [
                .conv2d(filters: 3, kernel: 3, stride: 1, padding: 1), .relu,
                .conv2d(filters: 2, kernel: 3, stride: 2, padding: 1), .flatten, .dense(units: 3),
            ]))
    }

    @Test func conv2DWithoutPadding() throws {
        try Self.check(ModelSpec(
            inputShape: [1, 6, 6], classCount: 2,
            layers: [.conv2d(filters: 2, kernel: 3, stride: 1, padding: 0), .conv2d(filters: 2, kernel: 2, stride: 1, padding: 0), .flatten, .dense(units: 2)]))
    }

    @Test func maxPool() throws {
        try Self.check(ModelSpec(
            inputShape: [1, 6, 6], classCount: 3,
            layers: [.conv2d(filters: 2, kernel: 3, stride: 1, padding: 1), .maxPool2d(size: 2, stride: 2), .conv2d(filters: 2, kernel: 3, stride: 1, padding: 1), .maxPool2d(size: 3, stride: 3), .flatten, .dense(units: 3)]))
    }

    @Test func cnnShapedStackWithReLUBeforePoolingAndImplicitFlatten() throws {
        // The model builds "ReLU, max-pool" as "max-pool, ReLU" and moves layouts around the spatial
        // layers; the gradients must be those of the spec as written.
        try Self.check(ModelSpec(
            inputShape: [2, 8, 8], classCount: 3,
            layers: [
                .conv2d(filters: 3, kernel: 3, stride: 1, padding: 1), .relu, .maxPool2d(size: 2, stride: 2),
                .conv2d(filters: 4, kernel: 3, stride: 1, padding: 1), .relu, .maxPool2d(size: 2, stride: 2),
                .dense(units: 5), .relu, .dense(units: 3),
            ]), rows: 4)
    }

    @Test func dropoutInTrainingModeWithAFixedMask() throws {
        try Self.check(
            ModelSpec(inputShape: [6], classCount: 3, layers: [.dense(units: 8), .relu, .dropout(rate: 0.4), .dense(units: 3)]),
            training: true)
    }

    @Test func cnnPresetShapesAndParameterCounts() throws {
        #expect(try Model(spec: ModelSpec.preset("cnn", inputFeatures: 784, classCount: 10), seed: 0).parameterCount == 1_663_370)
        #expect(try Model(spec: ModelSpec.preset("2nn", inputFeatures: 784, classCount: 10), seed: 0).parameterCount == 199_210)
        #expect(try Model(spec: ModelSpec.preset("logreg", inputFeatures: 64, classCount: 10), seed: 0).parameterCount == 650)
        #expect(try Model(spec: ModelSpec.preset("mlp:32,16", inputFeatures: 64, classCount: 10), seed: 0).parameterCount == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10)
        #expect(throws: CoreError.self) { try ModelSpec.preset("cnn", inputFeatures: 100, classCount: 10) }
        #expect(throws: CoreError.self) { try ModelSpec.preset("mlp:0", inputFeatures: 10, classCount: 2) }
        #expect(throws: CoreError.self) { try ModelSpec.preset("resnet", inputFeatures: 10, classCount: 2) }
    }

    @Test func lossOfUniformLogitsIsLogClassCount() throws {
        let model = try Model(spec: ModelSpec(inputShape: [4], classCount: 5, layers: [.dense(units: 5)]), seed: 1)
        try model.setParameters([Float](repeating: 0, count: model.parameterCount))
        var rng = SeededGenerator(seed: 0)
        let (loss, gradient) = model.lossAndGradient(features: [1, 2, 3, 4], labels: [2], rng: &rng)
        #expect(abs(loss - 1.6094379124341003) < 1e-6)  // ln 5
        // dL/db = softmax - onehot = 0.2 everywhere, -0.8 at the label.
        let bias = Array(gradient[20..<25])
        #expect(bias.enumerated().allSatisfy { abs($0.element - ($0.offset == 2 ? -0.8 : 0.2)) < 1e-6 })
    }

    @Test func maxPoolForwardKnownValues() throws {
        // A 1x4x4 input pooled 2x2 picks each window's maximum.
        let spec = ModelSpec(inputShape: [1, 4, 4], classCount: 4, layers: [.maxPool2d(size: 2, stride: 2), .flatten])
        let model = try Model(spec: spec, seed: 0)
        let input: [Float] = [1, 5, 2, 0, 3, 4, 8, 1, 0, 0, 1, 1, 9, 0, 1, 7]
        #expect(model.logits(features: input, count: 1) == [5, 8, 9, 7])
    }

    @Test func convolutionForwardKnownValues() throws {
        // A 3x3 all-ones kernel with padding 1 sums each pixel's neighbourhood.
        let spec = ModelSpec(inputShape: [1, 3, 3], classCount: 9, layers: [.conv2d(filters: 1, kernel: 3, stride: 1, padding: 1), .flatten])
        let model = try Model(spec: spec, seed: 0)
        try model.setParameters([Float](repeating: 1, count: 9) + [0.5])
        let out = model.logits(features: [1, 2, 3, 4, 5, 6, 7, 8, 9], count: 1)
        #expect(out == [12, 21, 16, 27, 45, 33, 24, 39, 28].map { $0 + 0.5 })
    }
}
