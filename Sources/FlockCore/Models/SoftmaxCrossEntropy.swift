#if canImport(Glibc)
import Glibc
#endif

/// Softmax cross-entropy of logits against integer labels, computed stably (max-subtracted) in one pass
/// that also yields the gradient (softmax - onehot) times a scale (1 / the whole batch's size, so that
/// replicas working on parts of a batch produce parts of the mean's gradient).
enum SoftmaxCrossEntropy {
    /// Returns the summed loss and the number of rows whose argmax equals the label; writes
    /// `gradientScale` * dLoss/dlogits into `gradient` when given.
    static func evaluate(
        logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int, classes: Int,
        gradient: UnsafeMutablePointer<Float>?, gradientScale: Float
    ) -> (loss: Double, correct: Int) {
        var total = 0.0
        var correct = 0
        let invBatch = gradientScale
        for r in 0..<batch {
            let z = logits + r * classes
            var maxValue = z[0]
            var best = 0
            for j in 1..<classes where z[j] > maxValue {
                maxValue = z[j]
                best = j
            }
            let label = Int(labels[r])
            if best == label { correct += 1 }
            var sum: Float = 0
            if let g = gradient.map({ $0 + r * classes }) {
                // Each exponential once: kept in the gradient row, then normalized in place.
                for j in 0..<classes {
                    g[j] = expf(z[j] - maxValue)
                    sum += g[j]
                }
                let inv = 1 / sum
                for j in 0..<classes { g[j] = g[j] * inv * invBatch }
                g[label] -= invBatch
            } else {
                for j in 0..<classes { sum += expf(z[j] - maxValue) }
            }
            total += Double(logf(sum) - (z[label] - maxValue))
        }
        return (total, correct)
    }

    /// Index of the largest logit (the first one on ties).
    static func argmax(_ z: UnsafePointer<Float>, _ classes: Int) -> Int {
        var best = 0
        for j in 1..<classes where z[j] > z[best] { best = j }
        return best
    }
}
