/// A 2-D convolution over [C, H, W] inputs with square kernels, stride and zero padding, computed as
/// im2col + one matrix product per sample (weights stored O x (C * k * k), the PyTorch layout).
///
/// The forward pass keeps each sample's column matrix so the backward pass reuses it instead of
/// rebuilding it.
/// - Complexity: O(batch * O * C * k^2 * Ho * Wo) per pass.
final class Conv2D: Layer {
    let inputShape: [Int]
    let outputShape: [Int]
    let channels: Int, height: Int, width: Int
    let filters: Int, kernel: Int, stride: Int, padding: Int
    let outHeight: Int, outWidth: Int
    var parameterCount: Int { filters * patchSize + filters }
    var parameterShapes: [(name: String, shape: [Int])] {
        [("weight", [filters, channels, kernel, kernel]), ("bias", [filters])]
    }

    private var patchSize: Int { channels * kernel * kernel }
    private var positions: Int { outHeight * outWidth }
    private var weight: UnsafeMutablePointer<Float>!
    private var bias: UnsafeMutablePointer<Float>!
    private var weightGradient: UnsafeMutablePointer<Float>!
    private var biasGradient: UnsafeMutablePointer<Float>!
    private let columns = Workspace()
    private let columnGradient = Workspace()

    init(input: [Int], filters: Int, kernel: Int, stride: Int, padding: Int) {
        precondition(input.count == 3, "Conv2D takes [C, H, W] inputs")
        channels = input[0]
        height = input[1]
        width = input[2]
        self.filters = filters
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        outHeight = (height + 2 * padding - kernel) / stride + 1
        outWidth = (width + 2 * padding - kernel) / stride + 1
        inputShape = input
        outputShape = [filters, outHeight, outWidth]
    }

    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {
        weight = parameters
        bias = parameters + filters * patchSize
        weightGradient = gradients
        biasGradient = gradients + filters * patchSize
    }

    func initialize(scheme: InitScheme, using rng: inout SeededGenerator) {
        let bound = scheme.bound(fanIn: patchSize, fanOut: filters * kernel * kernel)
        rng.fillUniform(weight, count: filters * patchSize, bound: bound)
        bias.update(repeating: 0, count: filters)
    }

    func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, training: Bool,
        rng: inout SeededGenerator
    ) {
        let colSize = patchSize * positions
        let cols = columns.reserve(batch * colSize)
        for b in 0..<batch {
            let col = cols + b * colSize
            im2col(x + b * inputSize, col)
            let out = y + b * outputSize
            for f in 0..<filters { (out + f * positions).update(repeating: bias[f], count: positions) }
            BLAS.gemm(
                transA: false, transB: false, m: filters, n: positions, k: patchSize,
                a: weight, lda: patchSize, b: col, ldb: positions, beta: 1, c: out, ldc: positions)
        }
    }

    func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, batch: Int
    ) {
        let colSize = patchSize * positions
        let cols = columns.storage.pointer
        biasGradient.update(repeating: 0, count: filters)
        for b in 0..<batch {
            let g = dy + b * outputSize
            // dW += dy_b col_b^T
            BLAS.gemm(
                transA: false, transB: true, m: filters, n: patchSize, k: positions,
                a: g, lda: positions, b: cols + b * colSize, ldb: positions,
                beta: b == 0 ? 0 : 1, c: weightGradient, ldc: patchSize)
            for f in 0..<filters {
                let row = g + f * positions
                var s: Float = 0
                for i in 0..<positions { s += row[i] }
                biasGradient[f] += s
            }
            if let dx {
                let dcol = columnGradient.reserve(colSize)
                BLAS.gemm(
                    transA: true, transB: false, m: patchSize, n: positions, k: filters,
                    a: weight, lda: patchSize, b: g, ldb: positions, beta: 0, c: dcol, ldc: positions)
                col2im(dcol, dx + b * inputSize)
            }
        }
    }

    /// Unfolds one sample into a (C * k * k) x (Ho * Wo) matrix; out-of-image taps read as zero.
    private func im2col(_ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>) {
        for c in 0..<channels {
            for ki in 0..<kernel {
                for kj in 0..<kernel {
                    let row = col + ((c * kernel + ki) * kernel + kj) * positions
                    for oh in 0..<outHeight {
                        let dst = row + oh * outWidth
                        let ih = oh * stride - padding + ki
                        if ih < 0 || ih >= height {
                            dst.update(repeating: 0, count: outWidth)
                            continue
                        }
                        let src = x + (c * height + ih) * width
                        if stride == 1 {
                            let lo = max(0, padding - kj)
                            let hi = min(outWidth, width + padding - kj)
                            if lo > 0 { dst.update(repeating: 0, count: lo) }
                            if hi > lo { (dst + lo).update(from: src + (lo - padding + kj), count: hi - lo) }
                            if hi < outWidth { (dst + max(hi, lo)).update(repeating: 0, count: outWidth - max(hi, lo)) }
                        } else {
                            for ow in 0..<outWidth {
                                let iw = ow * stride - padding + kj
                                dst[ow] = iw >= 0 && iw < width ? src[iw] : 0
                            }
                        }
                    }
                }
            }
        }
    }

    /// Folds a column-gradient matrix back into an input-gradient sample (the adjoint of ``im2col``).
    private func col2im(_ col: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>) {
        dx.update(repeating: 0, count: inputSize)
        for c in 0..<channels {
            for ki in 0..<kernel {
                for kj in 0..<kernel {
                    let row = col + ((c * kernel + ki) * kernel + kj) * positions
                    for oh in 0..<outHeight {
                        let ih = oh * stride - padding + ki
                        if ih < 0 || ih >= height { continue }
                        let src = row + oh * outWidth
                        let dst = dx + (c * height + ih) * width
                        if stride == 1 {
                            let lo = max(0, padding - kj)
                            let hi = min(outWidth, width + padding - kj)
                            if hi > lo {
                                let d = dst + (lo - padding + kj)
                                for i in 0..<(hi - lo) { d[i] += src[lo + i] }
                            }
                        } else {
                            for ow in 0..<outWidth {
                                let iw = ow * stride - padding + kj
                                if iw >= 0 && iw < width { dst[iw] += src[ow] }
                            }
                        }
                    }
                }
            }
        }
    }
}
