import FlockCore
import FlockRegistry
import FlockTestSupport
import Foundation
import Testing

/// The Python that runs the ONNX checks: `$PYTHON` (the Makefile exports it) or `python3`.
private let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"

/// Whether `python -c CODE` exits 0.
private func pythonSucceeds(_ code: String) -> Bool {
    (try? TestData.run("/usr/bin/env", [python, "-c", code]).status) == 0
}

// `make test` installs onnxruntime and onnx for $PYTHON through `make deps` (scripts/deps.sh). On a machine
// without them the tests below are reported as skipped, never as passed: they only count when Python really
// loaded and ran the exported file.

/// Whether Python can import onnxruntime (and numpy, which it depends on).
private let onnxruntimeAvailable = pythonSucceeds("import numpy, onnxruntime")
/// Whether Python can import the `onnx` package (for its model checker).
private let onnxAvailable = pythonSucceeds("import onnx")

/// Runs Python on `script` with `arguments`, requiring exit status 0; returns its standard output.
private func runPython(_ script: String, _ arguments: [String]) throws -> String {
    let result = try TestData.run("/usr/bin/env", [python, "-c", script] + arguments)
    try #require(result.status == 0, "python failed: \(result.error)")
    return result.output
}

/// Loads an ONNX file with onnxruntime, feeds it the float32 rows of a raw little-endian file and writes the
/// `logits` output the same way. Arguments: model, features file, rows, features, logits file.
private let onnxruntimeScript = """
    import sys
    import numpy as np
    import onnxruntime as ort
    model, features, rows, width, out = sys.argv[1:6]
    x = np.fromfile(features, dtype="<f4").reshape(int(rows), int(width))
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["features"], session.get_inputs()
    (logits,) = session.run(["logits"], {"features": x})
    np.ascontiguousarray(logits, dtype="<f4").tofile(out)
    print(logits.shape[0], logits.shape[1])
    """

/// Runs `onnx.checker.check_model` with full shape inference and prints the model's header fields.
private let checkerScript = """
    import sys
    import onnx
    model = onnx.load(sys.argv[1])
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    def dims(value):
        return ",".join(d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim)
    opsets = ",".join(f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import)
    print(model.ir_version, model.producer_name, opsets)
    print(graph.input[0].name, dims(graph.input[0]), graph.output[0].name, dims(graph.output[0]))
    print(" ".join(sorted({n.op_type for n in graph.node})))
    """

/// The little-endian bytes of `values`.
private func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    var bytes = [UInt8]()
    bytes.reserveCapacity(values.count * 4)
    for value in values {
        let bits = value.bitPattern
        for shift in [0, 8, 16, 24] as [UInt32] { bytes.append(UInt8(truncatingIfNeeded: bits >> shift)) }
    }
    return bytes
}

/// The floats of little-endian bytes.
private func floats(_ bytes: [UInt8]) -> [Float] {
    stride(from: 0, to: bytes.count - bytes.count % 4, by: 4).map { i in
        Float(
            bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3])
                << 24
        )
    }
}

/// A model to export: a spec, the scaling that goes with it and how raw features are drawn.
struct ONNXCase: Sendable, CustomTestStringConvertible {
    var name: String
    var spec: @Sendable () throws -> ModelSpec
    var scaling: ScalingKind
    var testDescription: String { "\(name), \(scaling.rawValue) scaling" }

    /// The spec, a seeded model of it, a scaling of `kind` with non-trivial statistics, and `rows` seeded raw
    /// (unscaled) rows of features in roughly [0, 255].
    func make(rows: Int, seed: UInt64) throws -> (model: Model, scaling: FeatureScaling, raw: [Float]) {
        let spec = try spec()
        let model = try Model(spec: spec, seed: seed)
        let features = spec.inputFeatures
        var rng = SeededGenerator(seed: seed &+ 1)
        let mean = (0..<features).map { _ in Float(rng.nextUnit() * 200 + 20) }
        let deviation = (0..<features).map { _ in Float(rng.nextUnit() * 60 + 5) }
        let raw = (0..<(rows * features)).map { i in
            max(0, mean[i % features] + deviation[i % features] * Float(rng.nextNormal()))
        }
        let scaling: FeatureScaling =
            switch self.scaling {
            case .none: .none
            case .max: .max(255)
            case .standardize: .standardize(mean: mean, deviation: deviation)
            }
        return (model, scaling, raw)
    }

    static let all: [ONNXCase] = [
        ONNXCase(
            name: "2nn on 64 features",
            spec: { try ModelSpec.preset("2nn", inputFeatures: 64, classCount: 10) },
            scaling: .standardize
        ),
        ONNXCase(
            name: "2nn on 64 features",
            spec: { try ModelSpec.preset("2nn", inputFeatures: 64, classCount: 10) },
            scaling: .max
        ),
        ONNXCase(
            name: "cnn on 28x28",
            spec: { try ModelSpec.preset("cnn", inputFeatures: 784, classCount: 10) },
            scaling: .max
        ),
        ONNXCase(
            name: "cnn on 28x28",
            spec: { try ModelSpec.preset("cnn", inputFeatures: 784, classCount: 10) },
            scaling: .standardize
        ),
        // Three input channels (FlockCore moves them channel-major), a strided padded convolution, ReLU
        // before an overlapping pool, dropout and an explicit flatten. Scaled, as every trained model is:
        // on raw features in the hundreds its logits reach ~500 and float rounding alone exceeds 1e-5.
        ONNXCase(
            name: "custom 3x10x10 convnet",
            spec: {
                ModelSpec(
                    inputShape: [3, 10, 10],
                    classCount: 7,
                    layers: [
                        .conv2d(filters: 4, kernel: 3, stride: 2, padding: 1), .relu, .maxPool2d(size: 2, stride: 1),
                        .dropout(rate: 0.5), .flatten, .dense(units: 16), .relu, .dense(units: 7),
                    ]
                )
            },
            scaling: .standardize
        ),
    ]
}

/// ONNX export of model files: onnxruntime in Python must load the exported file and compute, from raw
/// features, the logits FlockCore computes from the scaled ones.
@Suite struct ONNXExportTests {
    @Test(
        .enabled(if: onnxruntimeAvailable, "needs Python with onnxruntime: make deps installs it"),
        arguments: ONNXCase.all
    )
    func onnxruntimeComputesFlocksLogits(_ example: ONNXCase) throws {
        let rows = 50
        let (model, scaling, raw) = try example.make(rows: rows, seed: 7)
        let file = ModelFile(model: model, scaling: scaling)
        let folder = TestData.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let onnx = folder + "/model.onnx", input = folder + "/features.f32", output = folder + "/logits.f32"
        try Data(ONNXExport.export(file)).write(to: URL(fileURLWithPath: onnx))
        try Data(littleEndianBytes(raw)).write(to: URL(fileURLWithPath: input))

        let shape = try runPython(onnxruntimeScript, [onnx, input, "\(rows)", "\(model.spec.inputFeatures)", output])
        let classes = model.spec.classCount
        #expect(shape.trimmingCharacters(in: .whitespacesAndNewlines) == "\(rows) \(classes)")
        let exported = floats(TestData.bytes(output))

        var dataset = Dataset(
            features: raw,
            labels: [Int32](repeating: 0, count: rows),
            featureCount: model.spec.inputFeatures
        )
        scaling.apply(to: &dataset)
        let expected = model.logits(features: dataset.features, count: rows)
        try #require(exported.count == expected.count)
        var worst: Float = 0
        for (a, b) in zip(exported, expected) { worst = max(worst, abs(a - b) / max(1, abs(b))) }
        #expect(worst <= 1e-5, "largest difference from FlockCore's logits: \(worst) (absolute, relative past 1)")
        // The logits are not all alike, so agreeing on them means something.
        #expect(Set(expected.map { ($0 * 1000).rounded() }).count > classes)
    }

    @Test(
        .enabled(if: onnxAvailable, "needs Python with onnx: make deps installs it"),
        arguments: [ONNXCase.all[0], ONNXCase.all[2]]
    )
    func theOnnxCheckerAcceptsTheModel(_ example: ONNXCase) throws {
        let (model, scaling, _) = try example.make(rows: 0, seed: 3)
        let folder = TestData.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let onnx = folder + "/model.onnx"
        try Data(ONNXExport.export(ModelFile(model: model, scaling: scaling))).write(to: URL(fileURLWithPath: onnx))
        let lines = try runPython(checkerScript, [onnx]).split(separator: "\n").map(String.init)
        try #require(lines.count == 3)
        #expect(lines[0] == "8 flock ai.onnx:13")
        #expect(lines[1] == "features batch,\(model.spec.inputFeatures) logits batch,\(model.spec.classCount)")
        var ops = model.spec.name == "cnn" ? ["Conv", "Gemm", "MaxPool", "Relu", "Reshape"] : ["Gemm", "Relu"]
        ops += example.scaling == .standardize ? ["Div", "Sub"] : example.scaling == .max ? ["Div"] : []
        #expect(lines[2] == ops.sorted().joined(separator: " "))
    }

    @Test func theModelProtoStartsWithItsHeaderFields() throws {
        let model = try Model(spec: try ModelSpec.preset("logreg", inputFeatures: 4, classCount: 3), seed: 1)
        let bytes = try ONNXExport.export(ModelFile(model: model, scaling: .none))
        // ir_version = 8 (field 1, varint), then producer_name = "flock" (field 2, length 5).
        #expect(Array(bytes.prefix(9)) == [0x08, 0x08, 0x12, 0x05] + Array("flock".utf8))
        // Ends with opset_import (field 8) { domain = "" (field 1), version = 13 (field 2) }.
        #expect(Array(bytes.suffix(6)) == [0x42, 0x04, 0x0A, 0x00, 0x10, 0x0D])
        // The weights (3 x 4, stored first in the flat vector) are in the file verbatim, as raw_data.
        let weights = littleEndianBytes(Array(model.parameterVector().prefix(12)))
        #expect((0...(bytes.count - weights.count)).contains { Array(bytes[$0..<($0 + weights.count)]) == weights })
    }

    @Test func aModelWithMultiChannelSpatialLogitsIsRefused() throws {
        let spec = ModelSpec(
            inputShape: [1, 4, 4],
            classCount: 2,
            layers: [.conv2d(filters: 2, kernel: 4, stride: 1, padding: 0)]
        )
        let model = try Model(spec: spec, seed: 1)
        let error = #expect(throws: RegistryError.self) {
            try ONNXExport.export(ModelFile(model: model, scaling: .none))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("flatten") == true)
    }

    @Test func aScalingOfAnotherWidthIsRefused() throws {
        let model = try Model(spec: try ModelSpec.preset("2nn", inputFeatures: 64, classCount: 10), seed: 1)
        let file = ModelFile(model: model, scaling: .standardize(mean: [0, 0, 0], deviation: [1, 1, 1]))
        let error = #expect(throws: RegistryError.self) { try ONNXExport.export(file) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("3 features") == true)
    }

    @Test func parametersThatDoNotFitTheSpecAreRefused() throws {
        let spec = try ModelSpec.preset("2nn", inputFeatures: 64, classCount: 10)
        let error = #expect(throws: RegistryError.self) {
            try ONNXExport.export(ModelFile(spec: spec, scaling: .none, parameters: [1, 2, 3]))
        }
        #expect(error?.code == .invalidArgument)
    }
}
