/// Max pooling over [C, H, W] with a square window and stride (no padding; a partial window at the edge
/// is dropped, as in PyTorch's default). The gradient flows to the first maximum of each window.
final class MaxPool2D: Layer {
    let inputShape: [Int]
    let outputShape: [Int]
    let channels: Int, height: Int, width: Int
    let size: Int, stride: Int
    let outHeight: Int, outWidth: Int
    var parameterCount: Int { 0 }
    var parameterShapes: [(name: String, shape: [Int])] { [] }
    private var argmax = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    private var argmaxCapacity = 1

    init(input: [Int], size: Int, stride: Int) {
        precondition(input.count == 3, "MaxPool2D takes [C, H, W] inputs")
        channels = input[0]
        height = input[1]
        width = input[2]
        self.size = size
        self.stride = stride
        outHeight = (height - size) / stride + 1
        outWidth = (width - size) / stride + 1
        inputShape = input
        outputShape = [channels, outHeight, outWidth]
    }

    deinit { argmax.deallocate() }

    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {}
    func initialize(scheme: InitScheme, using rng: inout SeededGenerator) {}

    func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, training: Bool,
        rng: inout SeededGenerator
    ) {
        let total = batch * outputSize
        if argmaxCapacity < total {
            argmax.deallocate()
            argmax = .allocate(capacity: total)
            argmaxCapacity = total
        }
        var o = 0
        for b in 0..<batch {
            let sample = x + b * inputSize
            for c in 0..<channels {
                let plane = c * height * width
                for oh in 0..<outHeight {
                    for ow in 0..<outWidth {
                        var best = plane + (oh * stride) * width + ow * stride
                        var bestValue = sample[best]
                        for ki in 0..<size {
                            let rowStart = plane + (oh * stride + ki) * width + ow * stride
                            for kj in 0..<size where sample[rowStart + kj] > bestValue {
                                bestValue = sample[rowStart + kj]
                                best = rowStart + kj
                            }
                        }
                        y[o] = bestValue
                        argmax[o] = Int32(best)
                        o += 1
                    }
                }
            }
        }
    }

    func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, batch: Int
    ) {
        guard let dx else { return }
        dx.update(repeating: 0, count: batch * inputSize)
        let per = outputSize
        for b in 0..<batch {
            let d = dx + b * inputSize
            for i in 0..<per {
                d[Int(argmax[b * per + i])] += dy[b * per + i]
            }
        }
    }
}
