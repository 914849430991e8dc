#if canImport(Glibc)
import Glibc
#endif

/// Softmax cross-entropy of logits against integer labels, mean over the batch, computed stably
/// (max-subtracted) in one pass that also yields the gradient (softmax - onehot) / batch.
enum SoftmaxCrossEntropy {
    /// Returns the mean loss and the number of rows whose argmax equals the label; writes
    /// dLoss/dlogits into `gradient` when given.
    static func evaluate(
        logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int, classes: Int,
        gradient: UnsafeMutablePointer<Float>?
    ) -> (loss: Double, correct: Int) {
        var total = 0.0
        var correct = 0
        let invBatch = 1 / Float(batch)
        for r in 0..<batch {
            let z = logits + r * classes
            var maxValue = z[0]
            var best = 0
            for j in 1..<classes where z[j] > maxValue {
                maxValue = z[j]
                best = j
            }
            var sum: Float = 0
            for j in 0..<classes { sum += expf(z[j] - maxValue) }
            let label = Int(labels[r])
            let logSum = logf(sum)
            total += Double(logSum - (z[label] - maxValue))
            if best == label { correct += 1 }
            if let g = gradient.map({ $0 + r * classes }) {
                let inv = 1 / sum
                for j in 0..<classes { g[j] = expf(z[j] - maxValue) * inv * invBatch }
                g[label] -= invBatch
            }
        }
        return (total / Double(batch), correct)
    }

    /// Index of the largest logit (the first one on ties).
    static func argmax(_ z: UnsafePointer<Float>, _ classes: Int) -> Int {
        var best = 0
        for j in 1..<classes where z[j] > z[best] { best = j }
        return best
    }
}
