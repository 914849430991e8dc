#if canImport(Glibc)
import Glibc
#endif

/// Which update rule an ``Optimizer`` applies.
public enum OptimizerKind: String, Codable, Sendable, CaseIterable {
    /// Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay.
    case sgd
    /// Adam (Kingma & Ba 2015) with L2 weight decay folded into the gradient.
    case adam
    /// AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay.
    case adamw
}

/// Hyper-parameters of an ``Optimizer`` (the learning rate comes from the schedule at each step).
public struct OptimizerConfig: Codable, Sendable, Equatable {
    /// The update rule.
    public var kind: OptimizerKind
    /// SGD momentum factor μ in [0, 1).
    public var momentum: Double
    /// SGD: use Nesterov momentum.
    public var nesterov: Bool
    /// Weight decay λ: L2 (added to the gradient) for SGD and Adam, decoupled for AdamW.
    public var weightDecay: Double
    /// Adam β1.
    public var beta1: Double
    /// Adam β2.
    public var beta2: Double
    /// Adam ε.
    public var epsilon: Double

    /// Creates a configuration; defaults are PyTorch's.
    public init(
        kind: OptimizerKind = .sgd, momentum: Double = 0, nesterov: Bool = false, weightDecay: Double = 0,
        beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8
    ) {
        self.kind = kind
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }

    /// Checks ranges.
    /// - Throws: ``CoreError/Code/invalidArgument`` naming the bad value.
    public func validate() throws(CoreError) {
        guard momentum >= 0, momentum < 1 else { throw CoreError(.invalidArgument, "momentum must be in [0, 1), got \(momentum)") }
        guard !nesterov || (kind == .sgd && momentum > 0) else {
            throw CoreError(.invalidArgument, "Nesterov momentum needs --optimizer sgd and --momentum > 0")
        }
        guard weightDecay >= 0, weightDecay.isFinite else { throw CoreError(.invalidArgument, "weight decay must be >= 0, got \(weightDecay)") }
        guard beta1 >= 0, beta1 < 1, beta2 >= 0, beta2 < 1, epsilon > 0 else {
            throw CoreError(.invalidArgument, "Adam needs 0 <= beta1, beta2 < 1 and epsilon > 0")
        }
    }
}

/// An optimizer over a model's flat parameter vector, with its state (momentum or moment estimates
/// and the step count) as plain values so that it can be checkpointed and restored exactly.
///
/// Update rules follow PyTorch's `torch.optim.SGD`, `Adam` and `AdamW` (so results are comparable):
/// - SGD: g += λw; v = μv + g; w -= lr · (Nesterov ? g + μv : v).
/// - Adam: g += λw; m = β1 m + (1-β1) g; s = β2 s + (1-β2) g²; w -= lr · m̂ / (√ŝ + ε).
/// - AdamW: w -= lr · λ · w, then the Adam step without λ.
public struct Optimizer: Sendable, Codable, Equatable {
    /// Hyper-parameters.
    public let config: OptimizerConfig
    /// Number of updates applied so far.
    public private(set) var step: Int
    /// SGD velocity or Adam first moment (empty when unused).
    public private(set) var firstMoment: [Float]
    /// Adam second moment (empty when unused).
    public private(set) var secondMoment: [Float]

    /// Creates a fresh optimizer for `parameterCount` parameters.
    public init(config: OptimizerConfig, parameterCount: Int) {
        self.config = config
        step = 0
        let needsFirst = config.kind != .sgd || config.momentum > 0
        firstMoment = needsFirst ? [Float](repeating: 0, count: parameterCount) : []
        secondMoment = config.kind == .sgd ? [] : [Float](repeating: 0, count: parameterCount)
    }

    /// Applies one update with learning rate `learningRate`. `gradients` may be modified (weight decay).
    /// - Complexity: O(parameters), no allocation.
    public mutating func update(
        parameters w: UnsafeMutableBufferPointer<Float>, gradients g: UnsafeMutableBufferPointer<Float>,
        learningRate: Double
    ) {
        precondition(w.count == g.count, "parameter and gradient counts differ")
        step += 1
        let lr = Float(learningRate)
        let decay = Float(config.weightDecay)
        let n = w.count
        switch config.kind {
        case .sgd:
            if decay > 0 { for i in 0..<n { g[i] += decay * w[i] } }
            let mu = Float(config.momentum)
            if mu == 0 {
                for i in 0..<n { w[i] -= lr * g[i] }
                return
            }
            let nesterov = config.nesterov
            firstMoment.withUnsafeMutableBufferPointer { v in
                for i in 0..<n {
                    v[i] = mu * v[i] + g[i]
                    w[i] -= lr * (nesterov ? g[i] + mu * v[i] : v[i])
                }
            }
        case .adam, .adamw:
            if config.kind == .adam, decay > 0 { for i in 0..<n { g[i] += decay * w[i] } }
            if config.kind == .adamw, decay > 0 {
                let shrink = 1 - lr * decay
                for i in 0..<n { w[i] *= shrink }
            }
            let b1 = Float(config.beta1), b2 = Float(config.beta2), eps = Float(config.epsilon)
            let c1 = Float(1 - pow(config.beta1, Double(step)))
            let c2 = Float(1 - pow(config.beta2, Double(step)))
            let stepSize = lr / c1
            let c2Root = c2.squareRoot()
            firstMoment.withUnsafeMutableBufferPointer { m in
                secondMoment.withUnsafeMutableBufferPointer { s in
                    for i in 0..<n {
                        m[i] = b1 * m[i] + (1 - b1) * g[i]
                        s[i] = b2 * s[i] + (1 - b2) * g[i] * g[i]
                        w[i] -= stepSize * m[i] / (s[i].squareRoot() / c2Root + eps)
                    }
                }
            }
        }
    }

    /// Whether ``update(from:into:gradients:learningRate:)`` applies: plain SGD, without momentum or weight
    /// decay, whose step reads the weights only once.
    public var updatesOutOfPlace: Bool { config.kind == .sgd && config.momentum == 0 && config.weightDecay == 0 }

    /// The plain SGD step written to another buffer: w = start − lr·g, bit for bit what
    /// ``update(parameters:gradients:learningRate:)`` computes in place when the weights hold `start`.
    /// - Precondition: ``updatesOutOfPlace``, and all three vectors have the same length.
    public mutating func update(
        from start: UnsafeBufferPointer<Float>, into w: UnsafeMutableBufferPointer<Float>, gradients g: UnsafeMutableBufferPointer<Float>,
        learningRate: Double
    ) {
        precondition(updatesOutOfPlace, "only plain SGD steps out of place")
        precondition(start.count == w.count && w.count == g.count, "parameter and gradient counts differ")
        step += 1
        let lr = Float(learningRate)
        for i in 0..<w.count { w[i] = start[i] - lr * g[i] }
    }

    /// Replaces the state with saved values (checkpoint restore).
    mutating func restore(step: Int, firstMoment: [Float], secondMoment: [Float]) {
        self.step = step
        self.firstMoment = firstMoment
        self.secondMoment = secondMoment
    }
}
