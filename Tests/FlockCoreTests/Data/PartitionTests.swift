import FlockCore
import Testing

@Suite struct PartitionTests {
    /// 10 classes of 400 rows each in a seeded random order, like the MNIST subset.
    static let labels: [Int32] = {
        var labels = (0..<4000).map { Int32($0 / 400) }
        var generator = SeededGenerator(seed: 2024)
        generator.shuffle(&labels)
        return labels
    }()

    static let schemes: [PartitionScheme] = [.iid, .shards, .dirichlet(alpha: 0.5), .dirichlet(alpha: 0.01)]

    /// Every part is strictly ascending, and together the parts hold each of `0..<count` exactly once.
    static func expectCovering(_ parts: [[Int]], count: Int, clients: Int) {
        #expect(parts.count == clients)
        var seen = [Bool](repeating: false, count: count)
        for part in parts {
            #expect(zip(part, part.dropFirst()).allSatisfy { $0 < $1 }, "a part is not sorted")
            for row in part {
                guard row >= 0, row < count, !seen[row] else {
                    Issue.record("row \(row) is out of range or in two parts")
                    return
                }
                seen[row] = true
            }
        }
        #expect(seen.allSatisfy { $0 }, "some rows are in no part")
    }

    // MARK: All schemes

    @Test(arguments: schemes, [1, 2, 7, 10, 100])
    func disjointAndCovering(scheme: PartitionScheme, clients: Int) throws {
        let parts = try scheme.partition(labels: Self.labels, clients: clients, seed: 42)
        Self.expectCovering(parts, count: Self.labels.count, clients: clients)
    }

    @Test(arguments: schemes)
    func worksOnUnevenClassesAndOddSizes(scheme: PartitionScheme) throws {
        // Classes 0, 1 and 3 (2 has no rows), 1,001 rows.
        let labels = (0..<1001).map { Int32([0, 0, 0, 1, 3][$0 % 5]) }
        for clients in [3, 13, 250] {
            let parts = try scheme.partition(labels: labels, clients: clients, seed: 5)
            Self.expectCovering(parts, count: labels.count, clients: clients)
        }
    }

    @Test(arguments: schemes)
    func sameSeedSameSplitOtherSeedOtherSplit(scheme: PartitionScheme) throws {
        let a = try scheme.partition(labels: Self.labels, clients: 10, seed: 1)
        let b = try scheme.partition(labels: Self.labels, clients: 10, seed: 1)
        let c = try scheme.partition(labels: Self.labels, clients: 10, seed: 2)
        #expect(a == b)
        #expect(a != c)
    }

    // MARK: iid

    @Test func iidDealsASeededPermutationRoundRobin() throws {
        let clients = 7
        let parts = try PartitionScheme.iid.partition(labels: Self.labels, clients: clients, seed: 99)
        var generator = SeededGenerator(seed: 99)
        let permutation = generator.permutation(Self.labels.count)
        for client in 0..<clients {
            let expected = stride(from: client, to: permutation.count, by: clients).map { permutation[$0] }.sorted()
            #expect(parts[client] == expected)
        }
        // 4000 = 7 x 571 + 3: the first three clients get one more row.
        #expect(parts.map(\.count) == [572, 572, 572, 571, 571, 571, 571])
    }

    // MARK: shards

    @Test(arguments: [5, 10, 20, 40])
    func shardsGiveAtMostTwoLabelsWhenShardsFitInClasses(clients: Int) throws {
        let parts = try PartitionScheme.shards.partition(labels: Self.labels, clients: clients, seed: 3)
        for part in parts {
            #expect(part.count == 4000 / clients)
            #expect(Set(part.map { Self.labels[$0] }).count <= 2)
        }
    }

    @Test(arguments: [3, 7, 15, 30])
    func shardsStraddlingClassBordersGiveFewLabels(clients: Int) throws {
        // Shards of 4000 / 2N rows do not line up with the 400-row classes, so a shard can hold two labels.
        let parts = try PartitionScheme.shards.partition(labels: Self.labels, clients: clients, seed: 3)
        let labelCounts = parts.map { part in Set(part.map { Self.labels[$0] }).count }
        let shardSize = (4000 + 2 * clients - 1) / (2 * clients)
        let labelsPerShard = (shardSize + 398) / 400 + 1
        #expect(labelCounts.allSatisfy { $0 <= 2 * labelsPerShard })
        if clients >= 15 {
            #expect(labelCounts.allSatisfy { $0 <= 4 })
            #expect(Double(labelCounts.reduce(0, +)) / Double(clients) <= 3)
        }
    }

    @Test(arguments: [(4000, 7), (4000, 10), (1003, 5), (21, 10), (20, 10)])
    func shardsFollowTheArraySplitRule(count: Int, clients: Int) throws {
        let labels = (0..<count).map { Int32(($0 * 7) % 10) }
        let parts = try PartitionScheme.shards.partition(labels: labels, clients: clients, seed: 11)
        Self.expectCovering(parts, count: count, clients: clients)

        // Rebuild the split from the rule: stable sort by label, numpy.array_split into 2N, shuffled shard order.
        let byLabel = labels.indices.sorted { (labels[$0], $0) < (labels[$1], $1) }
        let shardCount = 2 * clients
        var shards = [[Int]]()
        var start = 0
        for s in 0..<shardCount {
            let size = count / shardCount + (s < count % shardCount ? 1 : 0)
            shards.append(Array(byLabel[start..<start + size]))
            start += size
        }
        var generator = SeededGenerator(seed: 11)
        let order = generator.permutation(shardCount)
        for client in 0..<clients {
            #expect(parts[client] == (shards[order[2 * client]] + shards[order[2 * client + 1]]).sorted())
            let base = count / shardCount
            #expect(parts[client].count >= 2 * base && parts[client].count <= 2 * base + 2)
        }
    }

    // MARK: dirichlet

    /// Mean over non-empty clients of the total variation distance between the client's label distribution and
    /// the global one, averaged over seeds.
    static func meanLabelSkew(alpha: Double, clients: Int, seeds: ClosedRange<UInt64>) throws -> Double {
        let classes = 10
        let global = [Double](repeating: 0.1, count: classes)
        var total = 0.0
        for seed in seeds {
            let parts = try PartitionScheme.dirichlet(alpha: alpha).partition(
                labels: labels,
                clients: clients,
                seed: seed
            )
            var sum = 0.0
            var counted = 0
            for part in parts where !part.isEmpty {
                var counts = [Double](repeating: 0, count: classes)
                for row in part { counts[Int(labels[row])] += 1 }
                sum += zip(counts, global).map { abs($0 / Double(part.count) - $1) }.reduce(0, +) / 2
                counted += 1
            }
            total += sum / Double(counted)
        }
        return total / Double(seeds.count)
    }

    @Test func dirichletSkewGrowsAsAlphaShrinks() throws {
        let skew = try [0.1, 1.0, 100.0].map { try Self.meanLabelSkew(alpha: $0, clients: 10, seeds: 1...5) }
        #expect(skew[0] > skew[1])
        #expect(skew[1] > skew[2])
        #expect(skew[0] > 0.5)
        #expect(skew[2] < 0.1)
    }

    @Test func tinyAlphaStillCoversEveryRow() throws {
        let parts = try PartitionScheme.dirichlet(alpha: 1e-6).partition(labels: Self.labels, clients: 20, seed: 8)
        Self.expectCovering(parts, count: Self.labels.count, clients: 20)
        // Essentially each class goes to a single client.
        for part in parts {
            let classes = Set(part.map { Self.labels[$0] })
            for c in classes { #expect(part.filter { Self.labels[$0] == c }.count >= 399) }
        }
    }

    // MARK: Errors

    @Test(arguments: schemes)
    func refusesBadClientCounts(scheme: PartitionScheme) throws {
        let zero = #expect(throws: CoreError.self) { try scheme.partition(labels: [0, 1, 2], clients: 0, seed: 1) }
        #expect(zero?.code == .invalidArgument)
        #expect(zero?.message.contains("at least 1") == true)

        let tooMany = #expect(throws: CoreError.self) { try scheme.partition(labels: [0, 1, 2], clients: 4, seed: 1) }
        #expect(tooMany?.code == .invalidArgument)
        #expect(tooMany?.message.contains("3 rows among 4 clients") == true)

        let empty = #expect(throws: CoreError.self) { try scheme.partition(labels: [], clients: 1, seed: 1) }
        #expect(empty?.code == .invalidData)

        let negative = #expect(throws: CoreError.self) { try scheme.partition(labels: [0, -1], clients: 1, seed: 1) }
        #expect(negative?.message.contains("row 2") == true)
    }

    @Test func shardsNeedTwoRowsPerClient() throws {
        let error = #expect(throws: CoreError.self) {
            try PartitionScheme.shards.partition(labels: [0, 1, 2, 3, 4], clients: 3, seed: 1)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("needs at least 6 rows") == true)
        #expect(throws: Never.self) {
            try PartitionScheme.shards.partition(labels: [0, 1, 2, 3, 4, 5], clients: 3, seed: 1)
        }
        #expect(throws: Never.self) { try PartitionScheme.iid.partition(labels: [0, 1, 2, 3, 4], clients: 5, seed: 1) }
    }

    // MARK: Text form

    @Test(arguments: [
        ("iid", PartitionScheme.iid, "iid"),
        ("shards", .shards, "shards"),
        ("dirichlet:0.5", .dirichlet(alpha: 0.5), "dirichlet:0.5"),
        ("dirichlet:1", .dirichlet(alpha: 1), "dirichlet:1"),
        ("dirichlet:100", .dirichlet(alpha: 100), "dirichlet:100"),
        ("dirichlet:1e-3", .dirichlet(alpha: 0.001), "dirichlet:0.001"),
        (" Dirichlet:0.25 ", .dirichlet(alpha: 0.25), "dirichlet:0.25"),
        ("IID", .iid, "iid"),
    ])
    func parsesValidSchemes(text: String, scheme: PartitionScheme, description: String) throws {
        let parsed = try PartitionScheme(parsing: text)
        #expect(parsed == scheme)
        #expect(parsed.description == description)
        #expect(try PartitionScheme(parsing: parsed.description) == parsed)
    }

    @Test(arguments: [
        "", "foo", "non-iid", "iid:2", "shards:3", "dirichlet", "dirichlet:", "dirichlet:0", "dirichlet:-1",
        "dirichlet:abc", "dirichlet:inf", "dirichlet:nan", "dirichlet0.5", "dirichlet:0.5:1",
    ])
    func refusesInvalidSchemes(text: String) {
        let error = #expect(throws: CoreError.self) { try PartitionScheme(parsing: text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("iid, shards or dirichlet:ALPHA") == true)
    }
}
