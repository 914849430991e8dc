import FlockCore

/// How the server turns the round's aggregated update into the next global model.
///
/// Every strategy first forms the example-weighted mean of the edges' deltas (McMahan et al. 2017,
/// "Communication-Efficient Learning of Deep Networks from Decentralized Data"):
/// Δ = Σ n_i Δ_i / Σ n_i, with Δ_i = w_i − w the edge's change to the global weights w. Then:
/// - `fedavg` and `fedprox`: w ← w + Δ. FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous
///   Networks") differs on the edges only, which add μ/2 ‖w_local − w‖² to their loss; μ travels in the plan.
/// - `fedadam`, `fedyogi`, `fedadagrad`: Δ is a pseudo-gradient for a server optimizer (Reddi et al. 2021,
///   "Adaptive Federated Optimization", Algorithm 2): m ← β1 m + (1 − β1) Δ, then
///   v ← v + Δ² (Adagrad), v ← β2 v + (1 − β2) Δ² (Adam), or v ← v − (1 − β2) Δ² sign(v − Δ²) (Yogi),
///   and w ← w + η m / (√v + τ). No bias correction, as in the paper.
public enum AggregationStrategy: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Federated averaging.
    case fedAvg
    /// FedAvg on the server, proximal term μ on the edges.
    case fedProx(mu: Double)
    /// Adaptive server optimizers with server learning rate η, momentum β1, second-moment decay β2 and
    /// adaptivity τ.
    case fedAdam(eta: Double, beta1: Double, beta2: Double, tau: Double)
    /// Yogi's additive second-moment update.
    case fedYogi(eta: Double, beta1: Double, beta2: Double, tau: Double)
    /// Adagrad's accumulated second moment.
    case fedAdagrad(eta: Double, beta1: Double, tau: Double)

    /// The accepted text forms.
    public static let syntax = "fedavg | fedprox[:MU] | fedadam[:ETA] | fedyogi[:ETA] | fedadagrad[:ETA]"

    /// Parses `fedavg`, `fedprox:0.01`, `fedadam`, `fedadam:0.01`, … (defaults: μ = 0.01; η = 0.01,
    /// β1 = 0.9, β2 = 0.99, τ = 0.001, in the ranges Reddi et al. found best).
    /// - Throws: ``CoreError/Code/invalidArgument`` listing the accepted forms.
    public init(parsing text: String) throws(CoreError) {
        let parts = text.lowercased().split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let value: Double?
        if parts.count == 2 {
            guard let v = Double(parts[1]), v > 0, v.isFinite else {
                throw CoreError(.invalidArgument, "strategy '\(text)': the parameter must be a positive number (\(Self.syntax))")
            }
            value = v
        } else if parts.count == 1 {
            value = nil
        } else {
            throw CoreError(.invalidArgument, "unknown strategy '\(text)': use \(Self.syntax)")
        }
        switch parts[0] {
        case "fedavg" where value == nil: self = .fedAvg
        case "fedprox": self = .fedProx(mu: value ?? 0.01)
        case "fedadam": self = .fedAdam(eta: value ?? 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3)
        case "fedyogi": self = .fedYogi(eta: value ?? 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3)
        case "fedadagrad": self = .fedAdagrad(eta: value ?? 0.01, beta1: 0.9, tau: 1e-3)
        default: throw CoreError(.invalidArgument, "unknown strategy '\(text)': use \(Self.syntax)")
        }
    }

    public var description: String {
        switch self {
        case .fedAvg: return "fedavg"
        case .fedProx(let mu): return "fedprox:\(mu)"
        case .fedAdam(let eta, _, _, _): return "fedadam:\(eta)"
        case .fedYogi(let eta, _, _, _): return "fedyogi:\(eta)"
        case .fedAdagrad(let eta, _, _): return "fedadagrad:\(eta)"
        }
    }

    /// The proximal coefficient μ the edges must use (0 unless FedProx).
    public var proximalMu: Double {
        if case .fedProx(let mu) = self { return mu }
        return 0
    }
}

/// The server's model state across rounds: global weights and the server optimizer's moments.
/// A value type, so it can be checkpointed after every round.
public struct GlobalModelState: Sendable, Codable, Equatable {
    /// The strategy that updates it.
    public let strategy: AggregationStrategy
    /// The global weights.
    public private(set) var weights: [Float]
    /// First moment m (adaptive strategies; empty otherwise).
    public private(set) var firstMoment: [Float]
    /// Second moment v (adaptive strategies; empty otherwise).
    public private(set) var secondMoment: [Float]
    /// Rounds applied so far.
    public private(set) var round: Int

    /// Starts from initial weights. Adagrad's v starts at τ², as in Reddi et al.
    public init(strategy: AggregationStrategy, weights: [Float]) {
        self.strategy = strategy
        self.weights = weights
        round = 0
        switch strategy {
        case .fedAvg, .fedProx:
            firstMoment = []
            secondMoment = []
        case .fedAdam, .fedYogi:
            firstMoment = [Float](repeating: 0, count: weights.count)
            secondMoment = [Float](repeating: 0, count: weights.count)
        case .fedAdagrad(_, _, let tau):
            firstMoment = [Float](repeating: 0, count: weights.count)
            secondMoment = [Float](repeating: Float(tau * tau), count: weights.count)
        }
    }

    /// Replaces the round counter and moments with saved values (checkpoint restore).
    mutating func restore(round: Int, firstMoment: [Float], secondMoment: [Float]) {
        self.round = round
        self.firstMoment = firstMoment
        self.secondMoment = secondMoment
    }

    /// Applies one round: `meanDelta` is the example-weighted mean of the edges' deltas.
    /// The update is elementwise, so it is split over `threads` parameter ranges; the result does not
    /// depend on `threads`.
    /// - Precondition: `meanDelta.count == weights.count`.
    /// - Complexity: O(parameters).
    public mutating func apply(meanDelta delta: [Float], threads: Int = 1) {
        precondition(delta.count == weights.count, "the aggregated update has the wrong length")
        round += 1
        let strategy = self.strategy
        weights.withUnsafeMutableBufferPointer { w in
            firstMoment.withUnsafeMutableBufferPointer { m in
                secondMoment.withUnsafeMutableBufferPointer { v in
                    delta.withUnsafeBufferPointer { d in
                        let (w, m, v, d) = (UnsafeSendable(w), UnsafeSendable(m), UnsafeSendable(v), UnsafeSendable(d))
                        Parallel.forEachRange(d.value.count, ways: threads) { range in
                            Self.update(strategy, range, w: w.value, m: m.value, v: v.value, d: d.value)
                        }
                    }
                }
            }
        }
    }

    private static func update(
        _ strategy: AggregationStrategy, _ range: Range<Int>, w: UnsafeMutableBufferPointer<Float>,
        m: UnsafeMutableBufferPointer<Float>, v: UnsafeMutableBufferPointer<Float>, d: UnsafeBufferPointer<Float>
    ) {
        switch strategy {
        case .fedAvg, .fedProx:
            for i in range { w[i] += d[i] }
        case .fedAdam(let eta, let beta1, let beta2, let tau), .fedYogi(let eta, let beta1, let beta2, let tau):
            let yogi: Bool
            if case .fedYogi = strategy { yogi = true } else { yogi = false }
            let (e, b1, b2, t) = (Float(eta), Float(beta1), Float(beta2), Float(tau))
            for i in range {
                let g = d[i]
                m[i] = b1 * m[i] + (1 - b1) * g
                let g2 = g * g
                if yogi {
                    let s: Float = v[i] - g2 > 0 ? 1 : (v[i] - g2 < 0 ? -1 : 0)
                    v[i] -= (1 - b2) * g2 * s
                } else {
                    v[i] = b2 * v[i] + (1 - b2) * g2
                }
                w[i] += e * m[i] / (v[i].squareRoot() + t)
            }
        case .fedAdagrad(let eta, let beta1, let tau):
            let (e, b1, t) = (Float(eta), Float(beta1), Float(tau))
            for i in range {
                let g = d[i]
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] += g * g
                w[i] += e * m[i] / (v[i].squareRoot() + t)
            }
        }
    }
}

/// Example-weighted sum of edge deltas, accumulated one update at a time (so the server never holds more
/// than one update besides the running sum).
public struct WeightedAverage: Sendable {
    private var sum: [Double]
    /// Total examples behind the sum.
    public private(set) var totalExamples: Int = 0
    /// Number of updates added.
    public private(set) var count: Int = 0

    /// Starts an empty sum for vectors of `length`.
    public init(length: Int) { sum = [Double](repeating: 0, count: length) }

    /// Adds one edge's delta with its example count.
    /// - Throws: ``CoreError/Code/invalidData`` for a wrong length, a non-finite value or a count below 1;
    ///   the sum is unchanged then.
    public mutating func add(delta: [Float], examples: Int) throws(CoreError) {
        try add(contentsOf: [(delta, examples)], threads: 1)
    }

    /// Adds many updates at once, in order, split over `threads` parameter ranges. Each element still sums
    /// the updates in their order, so the result is the same as adding them one by one, for any `threads`.
    /// - Throws: ``CoreError/Code/invalidData`` naming the first bad update; the sum is unchanged then.
    public mutating func add(contentsOf updates: [(delta: [Float], examples: Int)], threads: Int) throws(CoreError) {
        for (index, update) in updates.enumerated() {
            guard update.delta.count == sum.count else {
                throw CoreError(.invalidData, "update\(updates.count == 1 ? "" : " \(index + 1)") has \(update.delta.count) values, the model has \(sum.count)")
            }
            guard update.examples >= 1 else {
                throw CoreError(.invalidData, "update\(updates.count == 1 ? "" : " \(index + 1)") reports \(update.examples) examples; at least 1 is needed")
            }
        }
        let finite = Parallel.map(updates.count) { u in
            updates[u].delta.withUnsafeBufferPointer { d in
                var ok = true
                for i in 0..<d.count where !d[i].isFinite { ok = false }
                return ok
            }
        }
        if let bad = finite.firstIndex(of: false) {
            throw CoreError(.invalidData, updates.count == 1 ? "update contains NaN or infinite values" : "update \(bad + 1) contains NaN or infinite values")
        }
        sum.withUnsafeMutableBufferPointer { total in
            let total = UnsafeSendable(total)
            Parallel.forEachRange(total.value.count, ways: threads) { range in
                for update in updates {
                    let w = Double(update.examples)
                    update.delta.withUnsafeBufferPointer { d in
                        for i in range { total.value[i] += w * Double(d[i]) }
                    }
                }
            }
        }
        for update in updates {
            totalExamples += update.examples
            count += 1
        }
    }

    /// The weighted mean Σ n_i Δ_i / Σ n_i.
    /// - Precondition: at least one update was added.
    public func mean() -> [Float] {
        precondition(totalExamples > 0, "no updates to average")
        let inv = 1 / Double(totalExamples)
        return sum.withUnsafeBufferPointer { total in
            [Float](unsafeUninitializedCapacity: total.count) { out, initialized in
                for i in 0..<total.count { out[i] = Float(total[i] * inv) }
                initialized = total.count
            }
        }
    }
}

/// A buffer pointer handed to parallel workers that write disjoint ranges.
///
/// @unchecked Sendable: every user gives each worker its own index range, and ``Parallel`` joins all
/// workers before the buffer's owner touches it again.
struct UnsafeSendable<Pointer>: @unchecked Sendable {
    let value: Pointer
    init(_ value: Pointer) { self.value = value }
}
