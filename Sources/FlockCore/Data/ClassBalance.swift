/// How the rows of a data set are spread over its classes: counts, shares, the imbalance ratio and the classes
/// that have no rows at all.
///
/// Its JSON form has the keys `counts`, `shares`, `total`, `imbalanceRatio` (null when infinite) and
/// `missingClasses`.
public struct ClassBalance: Sendable, Codable, Equatable {
    /// Rows per class, indexed by class.
    public let counts: [Int]
    /// Each class's fraction of all rows, in 0...1 (all 0 when there are no rows).
    public let shares: [Double]
    /// The number of rows.
    public let total: Int
    /// The largest class count divided by the smallest; `.infinity` when some class has no rows, 1 when there
    /// are no classes.
    public let imbalanceRatio: Double
    /// The classes in `0..<classCount` that have no rows, ascending.
    public let missingClasses: [Int]

    /// The number of classes counted.
    public var classCount: Int { counts.count }

    /// Counts `labels` per class.
    ///
    /// - Parameters:
    ///   - labels: One class label per row.
    ///   - classCount: The number of classes the model distinguishes, so that classes with no rows are reported;
    ///     by default the largest label plus one. A label at or beyond `classCount` widens the count to include it.
    /// - Precondition: every label is non-negative.
    /// - Complexity: O(`labels.count` + `classCount`).
    public init(labels: [Int32], classCount: Int? = nil) {
        let largest = Int(labels.max() ?? -1)
        // Checked even in -Ounchecked builds, where `precondition` and bounds checks are compiled out.
        if labels.contains(where: { $0 < 0 }) { fatalError("class labels must be non-negative") }
        let classes = Swift.max(classCount ?? 0, largest + 1)
        var counts = [Int](repeating: 0, count: classes)
        for label in labels { counts[Int(label)] += 1 }
        self.counts = counts
        self.total = labels.count
        let total = Double(labels.count)
        self.shares = counts.map { labels.isEmpty ? 0 : Double($0) / total }
        self.missingClasses = counts.indices.filter { counts[$0] == 0 }
        if classes == 0 {
            self.imbalanceRatio = 1
        } else if !missingClasses.isEmpty {
            self.imbalanceRatio = .infinity
        } else {
            self.imbalanceRatio = Double(counts.max()!) / Double(counts.min()!)
        }
    }

    /// A small aligned table of class, count and share, a total line and the imbalance ratio, e.g.
    ///
    ///     class  count   share
    ///         0    400   10.0%
    ///         1    400   10.0%
    ///     total    800  100.0%
    ///     imbalance ratio (largest / smallest class): 1.00
    public func render() -> String {
        let header = ["class", "count", "share"]
        var rows = counts.indices.map { ["\($0)", "\(counts[$0])", Self.percent(shares[$0])] }
        rows.append(["total", "\(total)", Self.percent(total > 0 ? 1 : 0)])
        var widths = header.map(\.count)
        for row in rows {
            for (j, cell) in row.enumerated() { widths[j] = Swift.max(widths[j], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { j, cell in
                String(repeating: " ", count: widths[j] - cell.count) + cell
            }.joined(separator: "  ")
        }
        var lines = [line(header)] + rows.map(line)
        if imbalanceRatio.isInfinite {
            let list = missingClasses.map(String.init).joined(separator: ", ")
            let noun = missingClasses.count == 1 ? "class \(list) has" : "classes \(list) have"
            lines.append("imbalance ratio (largest / smallest class): infinite (\(noun) no rows)")
        } else {
            lines.append("imbalance ratio (largest / smallest class): \(Self.fixed(imbalanceRatio, decimals: 2))")
        }
        return lines.joined(separator: "\n")
    }

    /// `share` as a percentage with one decimal, e.g. "12.5%".
    private static func percent(_ share: Double) -> String {
        fixed(share * 100, decimals: 1) + "%"
    }

    /// A non-negative finite value with a fixed number of decimals, without Foundation.
    private static func fixed(_ value: Double, decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        guard value.isFinite, value * scale < 9e18 else { return "\(value)" }
        let scaled = Int((value * scale).rounded())
        let unit = Int(scale)
        let fraction = String(scaled % unit)
        return "\(scaled / unit)." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }

    // MARK: Codable

    private enum CodingKeys: String, CodingKey {
        case counts, shares, total, imbalanceRatio, missingClasses
    }

    /// Decodes the JSON form; a null `imbalanceRatio` means infinity.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        counts = try container.decode([Int].self, forKey: .counts)
        shares = try container.decode([Double].self, forKey: .shares)
        total = try container.decode(Int.self, forKey: .total)
        imbalanceRatio = try container.decodeIfPresent(Double.self, forKey: .imbalanceRatio) ?? .infinity
        missingClasses = try container.decode([Int].self, forKey: .missingClasses)
    }

    /// Encodes the JSON form; an infinite `imbalanceRatio` is written as null.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(counts, forKey: .counts)
        try container.encode(shares, forKey: .shares)
        try container.encode(total, forKey: .total)
        if imbalanceRatio.isFinite {
            try container.encode(imbalanceRatio, forKey: .imbalanceRatio)
        } else {
            try container.encodeNil(forKey: .imbalanceRatio)
        }
        try container.encode(missingClasses, forKey: .missingClasses)
    }
}
