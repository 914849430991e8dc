/// How the rows of one data set are split among simulated clients.
///
/// The schemes follow the federated learning literature:
/// - ``iid``: every client gets a uniform random share of the rows.
/// - ``shards``: the pathological non-IID split of McMahan et al., "Communication-Efficient Learning of Deep
///   Networks from Decentralized Data" (AISTATS 2017): rows sorted by label, cut into `2N` shards, two shards
///   per client, so most clients see only two classes.
/// - ``dirichlet(alpha:)``: label skew drawn from a symmetric Dirichlet(`alpha`) per class; small `alpha` gives
///   strongly skewed clients, large `alpha` approaches IID.
///
/// The text form (``init(parsing:)``, ``description``) is `iid`, `shards` or `dirichlet:ALPHA`.
public enum PartitionScheme: Sendable, Equatable, CustomStringConvertible {
    /// A seeded permutation dealt round robin.
    case iid
    /// Two label-sorted shards per client (McMahan et al. 2017).
    case shards
    /// Per-class proportions drawn from Dirichlet(`alpha`, ..., `alpha`); `alpha` is positive and finite.
    case dirichlet(alpha: Double)

    /// Parses `iid`, `shards` or `dirichlet:ALPHA` with `ALPHA > 0` (e.g. `dirichlet:0.5`); case and surrounding
    /// spaces are ignored.
    /// - Throws: ``CoreError/Code/invalidArgument`` naming the text and listing the valid forms.
    public init(parsing text: String) throws(CoreError) {
        let forms = "use iid, shards or dirichlet:ALPHA with ALPHA > 0 (e.g. dirichlet:0.5)"
        var trimmed = Substring(text.lowercased())
        while trimmed.first?.isWhitespace == true { trimmed.removeFirst() }
        while trimmed.last?.isWhitespace == true { trimmed.removeLast() }
        switch trimmed {
        case "iid":
            self = .iid
        case "shards":
            self = .shards
        case "dirichlet":
            throw CoreError(.invalidArgument, "partition scheme 'dirichlet' needs an alpha; \(forms)")
        default:
            guard trimmed.hasPrefix("dirichlet:") else {
                throw CoreError(.invalidArgument, "unknown partition scheme '\(text)'; \(forms)")
            }
            let value = trimmed.dropFirst("dirichlet:".count)
            guard let alpha = Double(value), alpha.isFinite, alpha > 0 else {
                throw CoreError(
                    .invalidArgument,
                    "partition scheme '\(text)': alpha '\(value)' is not a finite number greater than 0; \(forms)"
                )
            }
            self = .dirichlet(alpha: alpha)
        }
    }

    /// The text form that ``init(parsing:)`` reads: `iid`, `shards` or `dirichlet:ALPHA` (an integral alpha is
    /// written without a fraction, e.g. `dirichlet:1`).
    public var description: String {
        switch self {
        case .iid:
            return "iid"
        case .shards:
            return "shards"
        case .dirichlet(let alpha):
            if alpha.rounded(.towardZero) == alpha, alpha.magnitude < 1e15 { return "dirichlet:\(Int64(alpha))" }
            return "dirichlet:\(alpha)"
        }
    }

    /// Splits the rows with these labels among `clients` clients.
    ///
    /// Every random choice comes from one `SeededGenerator(seed: seed)`, so the same labels, client count and
    /// seed always give the same split.
    ///
    /// - `iid`: a random permutation of the rows; client `i` gets `perm[i]`, `perm[i + N]`, `perm[i + 2N]`, ...
    /// - `shards` (McMahan et al. 2017): rows stable-sorted by label are cut into `2N` contiguous shards whose
    ///   sizes differ by at most one (the first `n % 2N` shards get the extra row, like `numpy.array_split`);
    ///   the shard order is shuffled and client `i` gets shards `order[2i]` and `order[2i + 1]`.
    /// - `dirichlet(alpha)`: for each class in ascending order (including classes with no rows, up to the largest
    ///   label), the class's rows are shuffled and split by proportions `p ~ Dirichlet(alpha, ..., alpha)` over the
    ///   clients (`p_i = Gamma(alpha) / sum`), at cut points `floor(cumsum(p)[..<N-1] * rowsOfClass)`; client `i`
    ///   gets piece `i`. There is no resampling, so with small `alpha` some clients can be small or empty.
    ///
    /// - Parameters:
    ///   - labels: One class label per row, each non-negative.
    ///   - clients: The number of clients `N`, at least 1 and at most the number of rows (`shards` needs at
    ///     least `2N` rows).
    ///   - seed: The seed for every random choice.
    /// - Returns: `N` arrays of row indices, each sorted ascending; together they hold every index in
    ///   `0..<labels.count` exactly once.
    /// - Throws: ``CoreError/Code/invalidArgument`` for a client count out of range; ``CoreError/Code/invalidData``
    ///   for no rows or a negative label.
    /// - Complexity: O(n log n + N x classes).
    public func partition(labels: [Int32], clients: Int, seed: UInt64) throws(CoreError) -> [[Int]] {
        let n = labels.count
        guard n > 0 else { throw CoreError(.invalidData, "cannot partition an empty data set among clients") }
        guard clients >= 1 else {
            throw CoreError(.invalidArgument, "the number of clients must be at least 1 (got \(clients))")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 }) {
            throw CoreError(.invalidData, "row \(bad + 1): label \(labels[bad]) is negative; labels must be 0 or more")
        }
        switch self {
        case .shards:
            guard n >= 2 * clients else {
                throw CoreError(
                    .invalidArgument,
                    "cannot split \(n) rows among \(clients) clients with shards: it cuts 2 x clients = "
                        + "\(2 * clients) shards, so it needs at least \(2 * clients) rows; use fewer clients"
                )
            }
        case .iid, .dirichlet:
            guard n >= clients else {
                throw CoreError(
                    .invalidArgument,
                    "cannot split \(n) rows among \(clients) clients: \(self) needs at least one row per client; "
                        + "use at most \(n) clients"
                )
            }
        }

        var generator = SeededGenerator(seed: seed)
        var parts: [[Int]]
        switch self {
        case .iid:
            let permutation = generator.permutation(n)
            parts = (0..<clients).map { client in
                Array(stride(from: client, to: n, by: clients).map { permutation[$0] })
            }
        case .shards:
            let byLabel = Self.stableOrderByLabel(labels)
            let shardCount = 2 * clients
            let base = n / shardCount
            let extra = n % shardCount
            func shard(_ s: Int) -> ArraySlice<Int> {
                let start = s * base + Swift.min(s, extra)
                return byLabel[start..<start + base + (s < extra ? 1 : 0)]
            }
            let order = generator.permutation(shardCount)
            parts = (0..<clients).map { client in Array(shard(order[2 * client]) + shard(order[2 * client + 1])) }
        case .dirichlet(let alpha):
            let classes = Int(labels.max()!) + 1
            var rowsOfClass = [[Int]](repeating: [], count: classes)
            for (row, label) in labels.enumerated() { rowsOfClass[Int(label)].append(row) }
            parts = [[Int]](repeating: [], count: clients)
            for c in 0..<classes {
                var rows = rowsOfClass[c]
                generator.shuffle(&rows)
                let proportions = Self.dirichlet(alpha: alpha, count: clients, using: &generator)
                var cumulative = 0.0
                var start = 0
                for client in 0..<clients {
                    let stop: Int
                    if client == clients - 1 {
                        stop = rows.count
                    } else {
                        cumulative += proportions[client]
                        stop = Swift.min(
                            Swift.max(Int((cumulative * Double(rows.count)).rounded(.down)), start),
                            rows.count
                        )
                    }
                    parts[client].append(contentsOf: rows[start..<stop])
                    start = stop
                }
            }
        }
        for i in parts.indices { parts[i].sort() }
        return parts
    }

    /// Row indices stably sorted by label (a counting sort).
    private static func stableOrderByLabel(_ labels: [Int32]) -> [Int] {
        let classes = Int(labels.max()!) + 1
        var starts = [Int](repeating: 0, count: classes + 1)
        for label in labels { starts[Int(label) + 1] += 1 }
        for c in 0..<classes { starts[c + 1] += starts[c] }
        var order = [Int](repeating: 0, count: labels.count)
        for (row, label) in labels.enumerated() {
            order[starts[Int(label)]] = row
            starts[Int(label)] += 1
        }
        return order
    }

    /// A draw from the symmetric Dirichlet(`alpha`, ..., `alpha`) over `count` components: independent
    /// Gamma(`alpha`) draws divided by their sum. When every draw underflows to 0 (possible for tiny `alpha`), all
    /// the mass goes to one uniformly chosen component, which is the limit of the distribution as `alpha` -> 0.
    private static func dirichlet(alpha: Double, count: Int, using generator: inout SeededGenerator) -> [Double] {
        var draws = (0..<count).map { _ in generator.nextGamma(shape: alpha) }
        let sum = draws.reduce(0, +)
        guard sum > 0, sum.isFinite else {
            draws = [Double](repeating: 0, count: count)
            draws[generator.nextIndex(below: count)] = 1
            return draws
        }
        return draws.map { $0 / sum }
    }
}
