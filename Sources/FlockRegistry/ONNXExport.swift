import FlockCore

/// Exports a model file as an ONNX model, for inference runtimes outside Flock (onnxruntime, ONNX.js, ...).
///
/// The ONNX graph (IR version 8, opset 13 of the default domain, producer `flock`) takes one input,
/// `features`: float `[batch, F]` of **raw, unscaled** features, with `batch` a symbolic dimension and `F`
/// the spec's ``ModelSpec/inputFeatures``; and gives one output, `logits`: float `[batch, classes]`, equal to
/// ``Model/logits(features:count:)`` of the scaled features up to float rounding. The model file's
/// ``FeatureScaling`` is the first part of the graph:
/// - `none`: nothing;
/// - `max(m)`: `Div(features, m)`;
/// - `standardize(mean, deviation)`: `Div(Sub(features, mean), deviation)`, per feature.
///
/// Then each spec layer maps to standard operators:
/// - `dense` -> `Gemm` with `transB = 1` (Flock stores weights out x in, as ONNX's `B` with `transB`);
/// - `conv2d` -> `Conv` with `kernel_shape`, `strides` and symmetric `pads` (weights `[O, C, k, k]`);
/// - `maxPool2d` -> `MaxPool` with `kernel_shape` and `strides` (a partial window at the edge is dropped,
///   `ceil_mode = 0`);
/// - `relu` -> `Relu`; `dropout` -> nothing (the identity at inference);
/// - `flatten`, and the implicit flatten before a dense layer that follows a spatial one -> `Reshape` to
///   `[batch, C * H * W]`; before the first spatial layer the flat rows are reshaped to `[batch, C, H, W]`.
///   Both keep Flock's element order (a sample's features are its `[C, H, W]` values in row-major order).
///
/// Weights are stored as `raw_data` initializers named `layerI.weight` and `layerI.bias` after the spec
/// layer `I` they belong to. The protobuf is written by hand (no code generation, no dependency).
///
/// Every ``LayerSpec`` case has a mapping, and the switch over them is exhaustive: a new layer kind does not
/// compile here until it gets one (or a ``RegistryError/Code/invalidArgument`` that names it).
public enum ONNXExport {
    /// The ONNX model bytes (a serialized `onnx.ModelProto`) of `file`.
    ///
    /// - Parameter file: a model file; its parameters must fit its spec.
    /// - Returns: the bytes of a `.onnx` file.
    /// - Throws: ``RegistryError/Code/invalidArgument`` when the file cannot be exported: its parameters do not
    ///   fit its spec, its standardization was fitted on another number of features, or its last layer has a
    ///   multi-channel spatial output (whose logits Flock keeps in a channel-major order that ONNX has no
    ///   single-tensor form for; end such a model with `flatten` and a dense layer).
    /// - Complexity: O(parameters).
    public static func export(_ file: ModelFile) throws(RegistryError) -> [UInt8] {
        let spec = file.spec
        let views: [ParameterView]
        do { views = try file.makeModel().parameterViews } catch {
            throw RegistryError(.invalidArgument, "cannot export the model to ONNX: \(error.message)", cause: error)
        }
        var graph = Graph(parameters: file.parameters, views: views)
        let features = spec.inputFeatures

        var x = inputName
        switch file.scaling {
        case .none:
            break
        case .max(let largest):
            let divisor = graph.floatInitializer("scaling.max", dims: [], values: [largest])
            x = graph.node("Div", "scaling", inputs: [x, divisor])
        case .standardize(let mean, let deviation):
            guard mean.count == features, deviation.count == features else {
                throw RegistryError(
                    .invalidArgument,
                    "cannot export the model to ONNX: its standardization was fitted on \(mean.count) features, "
                        + "the model takes \(features)"
                )
            }
            let meanName = graph.floatInitializer("scaling.mean", dims: [features], values: mean)
            let deviationName = graph.floatInitializer("scaling.deviation", dims: [features], values: deviation)
            x = graph.node("Sub", "scaling.center", inputs: [x, meanName])
            x = graph.node("Div", "scaling", inputs: [x, deviationName])
        }

        // `shape` follows FlockCore's per-sample shape; `spatial` says whether the ONNX tensor is [N, C, H, W]
        // (true) or [N, features] (false).
        var shape = spec.inputShape
        var spatial = false
        func toSpatial(_ prefix: String) {
            guard !spatial else { return }
            let target = graph.int64Initializer("\(prefix).shape", values: [0] + shape.map { Int64($0) })
            x = graph.node("Reshape", "\(prefix).reshape", inputs: [x, target])
            spatial = true
        }
        func toFlat(_ prefix: String) {
            guard spatial else { return }
            let target = graph.int64Initializer("\(prefix).shape", values: [0, -1])
            x = graph.node("Reshape", "\(prefix).flatten", inputs: [x, target])
            spatial = false
        }

        for (index, layer) in spec.layers.enumerated() {
            let prefix = "layer\(index)"
            switch layer {
            case .dense(let units):
                toFlat(prefix)
                let (weight, bias) = graph.layerParameters(index)
                x = graph.node("Gemm", "\(prefix).gemm", inputs: [x, weight, bias], attributes: [.int("transB", 1)])
                shape = [units]
            case .conv2d(let filters, let kernel, let stride, let padding):
                toSpatial(prefix)
                let (weight, bias) = graph.layerParameters(index)
                x = graph.node(
                    "Conv",
                    "\(prefix).conv",
                    inputs: [x, weight, bias],
                    attributes: [
                        .ints("kernel_shape", [kernel, kernel]), .ints("strides", [stride, stride]),
                        .ints("pads", [padding, padding, padding, padding]),
                    ]
                )
                shape = [
                    filters, (shape[1] + 2 * padding - kernel) / stride + 1,
                    (shape[2] + 2 * padding - kernel) / stride + 1,
                ]
            case .maxPool2d(let size, let stride):
                toSpatial(prefix)
                x = graph.node(
                    "MaxPool",
                    "\(prefix).maxpool",
                    inputs: [x],
                    attributes: [.ints("kernel_shape", [size, size]), .ints("strides", [stride, stride])]
                )
                shape = [shape[0], (shape[1] - size) / stride + 1, (shape[2] - size) / stride + 1]
            case .relu:
                x = graph.node("Relu", "\(prefix).relu", inputs: [x])
            case .flatten:
                toFlat(prefix)
                shape = [shape.reduce(1, *)]
            case .dropout:
                break
            }
        }
        if shape.count == 3 && shape[0] > 1 {
            throw RegistryError(
                .invalidArgument,
                "cannot export the model to ONNX: its last layer outputs \(shape[0]) channels of "
                    + "\(shape[1])x\(shape[2]); end it with flatten and a dense layer"
            )
        }
        toFlat("output")
        graph.finish(output: x)

        var inputType = ProtobufWriter()
        inputType.message(1) { t in  // TypeProto.tensor_type
            t.int(1, elementFloat)  // elem_type
            t.message(2) { s in  // shape
                s.message(1) { d in d.string(2, "batch") }  // dim_param
                s.message(1) { d in d.int(1, Int64(features)) }  // dim_value
            }
        }
        var outputType = ProtobufWriter()
        outputType.message(1) { t in
            t.int(1, elementFloat)
            t.message(2) { s in
                s.message(1) { d in d.string(2, "batch") }
                s.message(1) { d in d.int(1, Int64(spec.classCount)) }
            }
        }

        var model = ProtobufWriter()
        model.int(1, irVersion)  // ModelProto.ir_version
        model.string(2, "flock")  // producer_name
        model.message(7) { g in  // graph
            for node in graph.nodes { g.lengthDelimited(1, node) }  // GraphProto.node
            g.string(2, "flock_\(spec.name)")  // name
            for initializer in graph.initializers { g.lengthDelimited(5, initializer) }  // initializer
            g.message(11) { v in  // input: ValueInfoProto
                v.string(1, inputName)
                v.lengthDelimited(2, inputType.bytes)
            }
            g.message(12) { v in  // output
                v.string(1, outputName)
                v.lengthDelimited(2, outputType.bytes)
            }
        }
        model.message(8) { o in  // opset_import: OperatorSetIdProto
            o.string(1, "")
            o.int(2, opsetVersion)
        }
        return model.bytes
    }

    private static let irVersion: Int64 = 8
    private static let opsetVersion: Int64 = 13
    private static let inputName = "features"
    private static let outputName = "logits"
    /// TensorProto.DataType FLOAT.
    private static let elementFloat: Int64 = 1
    /// TensorProto.DataType INT64.
    private static let elementInt64: Int64 = 7

    /// A node attribute: an `INT` or an `INTS`.
    private enum Attribute {
        case int(String, Int)
        case ints(String, [Int])
    }

    /// The nodes and initializers of the graph, each already serialized.
    private struct Graph {
        let parameters: [Float]
        let views: [ParameterView]
        var nodes: [[UInt8]] = []
        var initializers: [[UInt8]] = []
        /// Name, op type, inputs, attributes of the last node, kept unserialized so that ``finish(output:)``
        /// can rename its output.
        private var pending: (name: String, op: String, inputs: [String], output: String, attributes: [Attribute])?

        init(parameters: [Float], views: [ParameterView]) {
            self.parameters = parameters
            self.views = views
        }

        /// Adds a node named `name` and returns the name of its output (the node's name too).
        mutating func node(_ op: String, _ name: String, inputs: [String], attributes: [Attribute] = []) -> String {
            flush()
            pending = (name, op, inputs, name, attributes)
            return name
        }

        /// Names `value` the graph output: renames the last node's output, or adds an `Identity`.
        mutating func finish(output value: String) {
            if let last = pending, last.output == value {
                pending?.output = ONNXExport.outputName
            } else {
                _ = node("Identity", "output", inputs: [value])
                pending?.output = ONNXExport.outputName
            }
            flush()
        }

        private mutating func flush() {
            guard let node = pending else { return }
            pending = nil
            var w = ProtobufWriter()
            for input in node.inputs { w.string(1, input) }  // NodeProto.input
            w.string(2, node.output)  // output
            w.string(3, node.name)  // name
            w.string(4, node.op)  // op_type
            for attribute in node.attributes {
                w.message(5) { a in  // attribute: AttributeProto
                    switch attribute {
                    case .int(let name, let value):
                        a.string(1, name)  // name
                        a.int(3, Int64(value))  // i
                        a.int(20, 2)  // type = INT
                    case .ints(let name, let values):
                        a.string(1, name)
                        for value in values { a.int(8, Int64(value)) }  // ints
                        a.int(20, 7)  // type = INTS
                    }
                }
            }
            nodes.append(w.bytes)
        }

        /// The initializers of spec layer `layer`'s weight and bias, added from the flat parameter vector.
        mutating func layerParameters(_ layer: Int) -> (weight: String, bias: String) {
            var names = [String]()
            for suffix in ["weight", "bias"] {
                // Model built these views from the same spec, so every weighted layer has both.
                let view = views.first { $0.layer == layer && $0.name == "\(layer).\(suffix)" }!
                names.append(
                    floatInitializer(
                        "layer\(layer).\(suffix)",
                        dims: view.shape,
                        values: parameters[view.offset..<(view.offset + view.count)]
                    )
                )
            }
            return (names[0], names[1])
        }

        /// Adds a FLOAT initializer with little-endian `raw_data` and returns its name.
        mutating func floatInitializer<C: Collection<Float>>(_ name: String, dims: [Int], values: C) -> String {
            var raw = [UInt8]()
            raw.reserveCapacity(values.count * 4)
            for value in values {
                let bits = value.bitPattern
                for shift in [0, 8, 16, 24] as [UInt32] { raw.append(UInt8(truncatingIfNeeded: bits >> shift)) }
            }
            return initializer(name, dims: dims, type: ONNXExport.elementFloat, raw: raw)
        }

        /// Adds a one-dimensional INT64 initializer and returns its name.
        mutating func int64Initializer(_ name: String, values: [Int64]) -> String {
            var raw = [UInt8]()
            for value in values {
                let bits = UInt64(bitPattern: value)
                for shift in stride(from: 0, to: 64, by: 8) {
                    raw.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift)))
                }
            }
            return initializer(name, dims: [values.count], type: ONNXExport.elementInt64, raw: raw)
        }

        private mutating func initializer(_ name: String, dims: [Int], type: Int64, raw: [UInt8]) -> String {
            var w = ProtobufWriter()
            for dim in dims { w.int(1, Int64(dim)) }  // TensorProto.dims
            w.int(2, type)  // data_type
            w.string(8, name)  // name
            w.lengthDelimited(9, raw)  // raw_data
            initializers.append(w.bytes)
            return name
        }
    }
}

/// Just enough of the protobuf wire format for ONNX: varint and length-delimited fields.
private struct ProtobufWriter {
    var bytes: [UInt8] = []

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func key(_ field: Int, wireType: UInt64) {
        varint(UInt64(field) << 3 | wireType)
    }

    /// An `int32`/`int64`/enum field (wire type 0); negative values take ten bytes, as protobuf specifies.
    mutating func int(_ field: Int, _ value: Int64) {
        key(field, wireType: 0)
        varint(UInt64(bitPattern: value))
    }

    /// A `bytes` or embedded-message field (wire type 2).
    mutating func lengthDelimited(_ field: Int, _ value: [UInt8]) {
        key(field, wireType: 2)
        varint(UInt64(value.count))
        bytes += value
    }

    /// A `string` field (wire type 2, UTF-8).
    mutating func string(_ field: Int, _ value: String) {
        lengthDelimited(field, Array(value.utf8))
    }

    /// An embedded-message field whose body `build` writes.
    mutating func message(_ field: Int, _ build: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        build(&inner)
        lengthDelimited(field, inner.bytes)
    }
}
