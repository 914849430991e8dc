/// A count sketch of a vector of d values (Charikar, Chen and Farach-Colton 2002): `rows` × `columns` cells,
/// where row r adds s_r(i)·x_i into cell h_r(i), with bucket h_r and sign s_r drawn from a seed. It is
/// linear, so the sketch of a sum of updates is the sum of their sketches: edges sketch their updates, the
/// server adds the sketches (masked, under secure aggregation) and recovers the heavy coordinates of the
/// sum, estimating each as the median over rows of s_r(i)·S[r][h_r(i)].
///
/// The server side of FetchSGD (Rothchild et al. 2020, "FetchSGD: Communication-Efficient Federated Learning
/// with Sketching") keeps momentum and error accumulation in sketch space: ``FetchSGDState``.
public struct CountSketch: Sendable {
    /// Rows (independent hash functions).
    public let rows: Int
    /// Cells per row.
    public let columns: Int
    /// Values of the sketched vectors (d).
    public let length: Int
    /// The hash seed every `sketch` round uses: the same in every round, so that the server's sketches add up.
    public static let sharedSeed: UInt64 = 0x5CE7_C4

    /// Cell of coordinate i in row r: `buckets[r * length + i]`, with the sign in the top bit.
    private let buckets: [UInt32]

    /// The sketch of vectors of `length` values with hashes drawn from `seed` (the same for a whole run, so
    /// that sketches of different rounds add up).
    /// - Throws: ``CodecError`` for sizes out of range.
    public init(rows: Int, columns: Int, length: Int, seed: UInt64) throws(CodecError) {
        guard (1...32).contains(rows), (1...(1 << 24)).contains(columns) else { throw CodecError("sketch: 1-32 rows of 1-16777216 columns") }
        guard length >= 1, length < Int(Int32.max) else { throw CodecError("sketch: vectors of 1 to 2^31 - 1 values") }
        self.rows = rows
        self.columns = columns
        self.length = length
        var random = SplitMix64(seed: seed ^ 0x5CE7_C400)
        var buckets = [UInt32](repeating: 0, count: rows * length)
        for index in buckets.indices {
            let h = random.next()
            buckets[index] = UInt32((h >> 32) % UInt64(columns)) | (h & 1 == 1 ? 0x8000_0000 : 0)
        }
        self.buckets = buckets
    }

    /// Cells of one sketch.
    public var cellCount: Int { rows * columns }

    /// The sketch of the vector whose coordinate i is `value(i)`.
    public func sketch(_ value: (Int) -> Float) -> [Float] {
        var cells = [Float](repeating: 0, count: cellCount)
        for i in 0..<length {
            let x = value(i)
            if x == 0 { continue }
            for r in 0..<rows {
                let b = buckets[r * length + i]
                cells[r * columns + Int(b & 0x7FFF_FFFF)] += b & 0x8000_0000 == 0 ? x : -x
            }
        }
        return cells
    }

    /// The estimate of every coordinate from `cells`: the median over rows of the signed cell.
    public func estimates(_ cells: [Float]) -> [Float] {
        precondition(cells.count == cellCount, "a sketch of the wrong size")
        var out = [Float](repeating: 0, count: length)
        var row = [Float](repeating: 0, count: rows)
        for i in 0..<length {
            for r in 0..<rows {
                let b = buckets[r * length + i]
                let c = cells[r * columns + Int(b & 0x7FFF_FFFF)]
                row[r] = b & 0x8000_0000 == 0 ? c : -c
            }
            row.sort()
            out[i] = rows % 2 == 1 ? row[rows / 2] : (row[rows / 2 - 1] + row[rows / 2]) / 2
        }
        return out
    }

    /// The coordinates of the `k` largest estimates in magnitude, with their estimates.
    public func heavyHitters(_ cells: [Float], k: Int) -> [(index: Int, value: Float)] {
        let estimates = estimates(cells)
        let threshold = TopKSparsifier.kthLargestMagnitude(estimates, k: min(max(k, 1), length))
        var hits = [(index: Int, value: Float)]()
        for i in 0..<length where abs(estimates[i]) >= threshold && estimates[i] != 0 && hits.count < k { hits.append((i, estimates[i])) }
        return hits
    }
}

/// The server's FetchSGD state (Rothchild et al. 2020): momentum and accumulated error kept as sketches.
/// Each round: S_u = ρ·S_u + S (the round's mean sketch), S_e += S_u, the k heavy hitters of S_e become the
/// round's sparse update, and their sketch is taken out of S_u and S_e, so what was not applied stays.
public struct FetchSGDState: Sendable {
    /// The sketch.
    public let sketch: CountSketch
    /// Momentum ρ.
    public let momentum: Float
    /// Coordinates applied per round.
    public let k: Int
    /// The momentum sketch S_u.
    public private(set) var accumulatedMomentum: [Float]
    /// The error sketch S_e: what was not applied yet.
    public private(set) var accumulatedError: [Float]

    /// Empty state.
    public init(sketch: CountSketch, momentum: Float, k: Int) {
        self.sketch = sketch
        self.momentum = momentum
        self.k = k
        accumulatedMomentum = [Float](repeating: 0, count: sketch.cellCount)
        accumulatedError = [Float](repeating: 0, count: sketch.cellCount)
    }

    /// Saved state: the momentum and error sketches of a run of `spec` over `length` values.
    /// - Throws: ``CodecError`` for a codec that is not a sketch, or sketches of the wrong size or not finite.
    public init(restoring spec: CodecSpec, length: Int, momentum: [Float], error: [Float]) throws(CodecError) {
        guard case .sketch(let rows, let columns, _, let k) = spec.withoutLosslessStage else {
            throw CodecError("a saved FetchSGD state for codec '\(spec)', which is not a sketch")
        }
        let sketch = try CountSketch(rows: rows, columns: columns, length: length, seed: CountSketch.sharedSeed)
        guard momentum.count == sketch.cellCount, error.count == sketch.cellCount, momentum.allSatisfy(\.isFinite), error.allSatisfy(\.isFinite) else {
            throw CodecError("a saved FetchSGD state that does not fit \(spec)")
        }
        self.init(sketch: sketch, momentum: Self.defaultMomentum, k: k ?? max(1, columns / 4))
        accumulatedMomentum = momentum
        accumulatedError = error
    }

    /// FetchSGD's momentum ρ in sketch space as Flock runs it: 0, since with ρ = 0.5 small sketches diverged
    /// on mnist5k.
    public static let defaultMomentum: Float = 0

    /// The update a round applies from the decoded mean of its ring codec `spec` over `length` values: the
    /// mean itself, or for `sketch` FetchSGD's step over `state` (created at the first sketched round).
    /// - Throws: ``CodecError`` for sketch dimensions that do not fit.
    public static func update(fromDecodedMean mean: [Float], of spec: CodecSpec, length: Int, state: inout FetchSGDState?) throws(CodecError) -> [Float] {
        guard case .sketch(let rows, let columns, _, let k) = spec.withoutLosslessStage else { return mean }
        var fetch: FetchSGDState
        if let state { fetch = state } else {
            let sketch = try CountSketch(rows: rows, columns: columns, length: length, seed: CountSketch.sharedSeed)
            fetch = FetchSGDState(sketch: sketch, momentum: defaultMomentum, k: k ?? max(1, columns / 4))
        }
        guard mean.count == fetch.sketch.cellCount else {
            throw CodecError("a decoded sketch of \(mean.count) cells; \(spec) has \(fetch.sketch.cellCount)")
        }
        let update = fetch.step(meanSketch: mean)
        state = fetch
        return update
    }

    /// Folds in the round's mean sketch and returns the dense update to apply (k nonzero values).
    public mutating func step(meanSketch: [Float]) -> [Float] {
        for c in 0..<meanSketch.count {
            accumulatedMomentum[c] = momentum * accumulatedMomentum[c] + meanSketch[c]
            accumulatedError[c] += accumulatedMomentum[c]
        }
        let hits = sketch.heavyHitters(accumulatedError, k: k)
        var update = [Float](repeating: 0, count: sketch.length)
        for (i, value) in hits { update[i] = value }
        let applied = sketch.sketch { update[$0] }
        for c in 0..<applied.count where applied[c] != 0 {
            accumulatedError[c] -= applied[c]
            accumulatedMomentum[c] = 0
        }
        return update
    }
}
