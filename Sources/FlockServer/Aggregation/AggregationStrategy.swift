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
///
/// The sum is kept in fixed point: every term n·Δ is rounded to a multiple of 2^-32 and the multiples are
/// summed as integers held in doubles. Integer sums below 2^53 are exact, so the total does not depend on
/// the order in which updates arrive or on how they are split over threads (two partial sums merge to the
/// same value as one sum over everything). This holds while Σ n·|Δ| of a coordinate stays below 2^21;
/// beyond it the sum is rounded as an ordinary double sum would be. A term's rounding error is at most
/// 2^-33, far below a float weight's precision.
public struct WeightedAverage: Sendable {
    /// Σ n_i Δ_i in units of 2^-32, every element an integer.
    private var sum: [Double]
    /// Total examples behind the sum.
    public private(set) var totalExamples: Int = 0
    /// Number of updates added.
    public private(set) var count: Int = 0

    /// One unit of the fixed-point sum is 2^-32.
    static let unitsPerOne: Double = 4_294_967_296
    /// 1.5·2^52: adding and subtracting it rounds a double below 2^51 in magnitude to the nearest integer
    /// (ties to even) with two vectorizable additions.
    static let roundingMagic: Double = 6_755_399_441_055_744

    /// Starts an empty sum for vectors of `length`.
    public init(length: Int) { sum = [Double](repeating: 0, count: length) }

    /// The length of the vectors this sum takes.
    public var length: Int { sum.count }

    /// Adds one edge's delta with its example count.
    /// - Throws: ``CoreError/Code/invalidData`` for a wrong length, a non-finite value or a count below 1;
    ///   the sum is unchanged then.
    public mutating func add(delta: [Float], examples: Int) throws(CoreError) {
        try add(contentsOf: [(delta, examples)], threads: 1)
    }

    /// Adds many updates at once, split over `threads` parameter ranges. The sum is exact, so the result is
    /// the same as adding them one by one, in any order, for any `threads`.
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
                    let scale = Double(update.examples) * Self.unitsPerOne
                    update.delta.withUnsafeBufferPointer { d in
                        for i in range { total.value[i] += Self.roundedToUnit(scale * Double(d[i])) }
                    }
                }
            }
        }
        for update in updates {
            totalExamples += update.examples
            count += 1
        }
    }

    /// Adds one edge's update n (local − global), straight from its weight vector, to the float sum `out` of a
    /// group of edges (`first`: `out` starts from zero). A group's sum is formed in float, in the order its
    /// edges are added (the precision of the float deltas an edge would send); ``add(groupSums:threads:)``
    /// then adds group sums exactly, so the result depends only on how updates are grouped, not on which
    /// thread forms a group or in which order groups are added. Values are not checked here: check
    /// ``isFinite`` once all updates are in.
    /// - Precondition: the vectors have the same length as `out`, and `examples` is at least 1.
    public static func addToGroupSum(
        difference local: UnsafeBufferPointer<Float>, from global: UnsafeBufferPointer<Float>, examples: Int,
        into out: UnsafeMutableBufferPointer<Float>, first: Bool
    ) {
        precondition(examples >= 1, "an example count of at least 1")
        precondition(global.count == out.count && local.count == out.count, "a difference of the wrong length")
        let weight = Float(examples)
        if first {
            let zero: Float = 0
            for i in 0..<out.count { out[i] = zero + weight * (local[i] - global[i]) }
        } else {
            for i in 0..<out.count { out[i] += weight * (local[i] - global[i]) }
        }
    }

    /// Adds group sums formed by ``addToGroupSum(difference:from:examples:into:first:)``: each value rounded to the
    /// fixed-point grid and added exactly, the parameters split over `threads` ranges. `examples` and
    /// `updates` are each group's total example count and number of edges.
    /// - Precondition: every group sum has ``length`` values, with at least one update of at least 1 example.
    public mutating func add(groupSums groups: [GroupSum], threads: Int) {
        Self.check(groups, length: sum.count)
        guard !groups.isEmpty else { return }
        sum.withUnsafeMutableBufferPointer { total in
            let total = UnsafeSendable(total)
            Parallel.forEachRange(total.value.count, ways: threads) { range in
                Self.addRounded(groups, into: total.value, range: range, fromZero: false)
            }
        }
        count(groups)
    }

    /// Replaces everything in this sum by the group sums `groups` (as ``add(groupSums:threads:)`` would add
    /// them to an empty sum), reusing its storage: a simulation keeps one sum for all its rounds.
    /// - Precondition: as for ``add(groupSums:threads:)``.
    public mutating func reset(summing groups: [GroupSum], threads: Int) {
        Self.check(groups, length: sum.count)
        totalExamples = 0
        count = 0
        sum.withUnsafeMutableBufferPointer { total in
            let total = UnsafeSendable(total)
            Parallel.forEachRange(total.value.count, ways: threads) { range in
                Self.addRounded(groups, into: total.value, range: range, fromZero: true)
            }
        }
        count(groups)
    }

    /// One group's float sum with its total examples and number of updates.
    public typealias GroupSum = (sum: UnsafeBufferPointer<Float>, examples: Int, updates: Int)

    private static func check(_ groups: [GroupSum], length: Int) {
        precondition(
            groups.allSatisfy { $0.sum.count == length && $0.updates >= 1 && $0.examples >= $0.updates },
            "a group sum of the wrong length or count")
    }

    private mutating func count(_ groups: [GroupSum]) {
        for group in groups {
            totalExamples += group.examples
            count += group.updates
        }
    }

    /// total[range] (+)= Σ rounded(group[range]), a block at a time so each block of the total stays in
    /// cache while every group is added to it; `fromZero` starts the blocks at zero.
    private static func addRounded(_ groups: [GroupSum], into total: UnsafeMutableBufferPointer<Double>, range: Range<Int>, fromZero: Bool) {
        let block = 2_048
        for start in stride(from: range.lowerBound, to: range.upperBound, by: block) {
            let part = start..<min(start + block, range.upperBound)
            let totalBlock = UnsafeMutableBufferPointer(rebasing: total[part])
            if fromZero { totalBlock.update(repeating: 0) }
            for group in groups {
                let groupBlock = UnsafeBufferPointer(rebasing: group.sum[part])
                for i in 0..<part.count { totalBlock[i] += roundedToUnit(Double(groupBlock[i]) * unitsPerOne) }
            }
        }
    }

    /// Adds everything another sum of the same length holds. The result is exact, as if every update of
    /// `other` had been added here.
    /// - Precondition: `other` has the same ``length``.
    public mutating func merge(_ other: WeightedAverage) {
        precondition(other.sum.count == sum.count, "sums of different lengths")
        sum.withUnsafeMutableBufferPointer { total in
            other.sum.withUnsafeBufferPointer { more in
                for i in 0..<total.count { total[i] += more[i] }
            }
        }
        totalExamples += other.totalExamples
        count += other.count
    }

    /// Whether every element of the sum is finite (false when an update added with
    /// ``add(groupSums:threads:)`` held NaN or an infinity).
    public var isFinite: Bool {
        sum.withUnsafeBufferPointer { total in
            var finite = true
            for i in 0..<total.count where !total[i].isFinite { finite = false }
            return finite
        }
    }

    /// The weighted mean Σ n_i Δ_i / Σ n_i.
    /// - Precondition: at least one update was added.
    public func mean() -> [Float] {
        var out: [Float] = []
        mean(into: &out)
        return out
    }

    /// The weighted mean Σ n_i Δ_i / Σ n_i written into `out` (resized to ``length``; its storage is reused).
    /// - Precondition: at least one update was added.
    public func mean(into out: inout [Float]) {
        precondition(totalExamples > 0, "no updates to average")
        let inv = 1 / (Double(totalExamples) * Self.unitsPerOne)
        if out.count != sum.count { out = [Float](repeating: 0, count: sum.count) }
        sum.withUnsafeBufferPointer { total in
            out.withUnsafeMutableBufferPointer { out in
                for i in 0..<total.count { out[i] = Float(total[i] * inv) }
            }
        }
    }

    /// `x` rounded to the nearest integer (ties to even), exact for |x| < 2^51; NaN and infinities stay so.
    @inline(__always)
    static func roundedToUnit(_ x: Double) -> Double { (x + roundingMagic) - roundingMagic }
}

/// A buffer pointer handed to parallel workers that write disjoint ranges.
///
/// @unchecked Sendable: every user gives each worker its own index range, and ``Parallel`` joins all
/// workers before the buffer's owner touches it again.
struct UnsafeSendable<Pointer>: @unchecked Sendable {
    let value: Pointer
    init(_ value: Pointer) { self.value = value }
}
