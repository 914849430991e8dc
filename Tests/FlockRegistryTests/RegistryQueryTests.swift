import FlockCore
import FlockTestSupport
import Foundation
import Synchronization
import Testing

import FlockRegistry

/// `registry query`: results on a real registry, and errors that point at the offending token.
@Suite struct RegistryQueryTests {
    @Test func queriesSelectOrderAndLimit() throws {
        let reader = try registry().reader
        #expect(try reader.query("accuracy >= 0.9 and round > 10 order by accuracy desc limit 5").map(\.id) == [4, 6])
        #expect(try reader.query("accuracy >= 0.9 order by accuracy desc limit 2").map(\.id) == [4, 6])
        #expect(try reader.query("alias = production").map(\.id) == [4])
        #expect(try reader.query("tag.team = \"vision\"").map(\.id) == [5, 3, 1])
        #expect(try reader.query("tag.size >= 20 and not (accuracy < 0.9)").map(\.id) == [3].filter { _ in false } + [])
        #expect(try reader.query("tag.size >= 20").map(\.id) == [5, 3])
        #expect(try reader.query("(accuracy < 0.8 or accuracy > 0.94) and status = candidate order by version").map(\.id) == [1])
        #expect(try reader.query("").map(\.id) == [6, 5, 4, 3, 2, 1])
        #expect(try reader.query("order by accuracy").map(\.id) == [1, 3, 2, 6, 4, 5])
        #expect(try reader.query("strategy = 'fedavg' and participants = 10 limit 1").map(\.id) == [6])
    }

    @Test(arguments: [
        ("accuracy 0.9", 10, "expected a comparison operator"),
        ("accuracy >= ", 13, "expected a value"),
        ("acuracy >= 0.9", 1, "unknown field 'acuracy'"),
        ("accuracy >= high", 13, "accuracy is a number"),
        ("(round > 3 and loss < 1", 24, "expected ')' to close the '(' at column 1"),
        ("round > 3 limit many", 17, "positive whole number"),
        ("round > 3 order accuracy", 17, "expected 'by'"),
        ("round > 3 round", 11, "unexpected 'round'"),
        ("tag.team = \"vision", 12, "never closed"),
        ("alias > production", 7, "alias compares only with =, != or in"),
        ("round in 5", 10, "expected '(' after 'in'"),
        ("round in (5, 6", 15, "expected ',' or ')' to close the '(' at column 10"),
        ("round in ()", 11, "expected a value after 'in ('"),
        ("round between 1 or 2", 17, "expected 'and' after 'round between 1'"),
        ("alias between a and b", 7, "alias compares only with =, != or in"),
        ("hash = 12ab", 8, "6 to 64 hex digits"),
        ("hash = \"not-hex\"", 8, "6 to 64 hex digits"),
        ("created > yesterday", 11, "created is a UTC date"),
        ("created = 2026-02-30", 11, "created is a UTC date"),
        ("created = \"2026-12-03T24:00Z\"", 11, "created is a UTC date"),
        ("round ! 3", 7, "'!' alone"),
        ("round > 3 order by alias", 20, "cannot order by"),
    ])
    func badQueriesPointAtTheOffendingToken(query: String, column: Int, message: String) throws {
        do {
            _ = try RegistryQuery(query)
            Issue.record("\(query) should not parse")
        } catch {
            #expect(error.code == .query)
            #expect(error.message.contains(message), "\(error.message)")
            #expect(error.message.contains("(column \(column))"), "\(error.message)")
            // The caret sits under the column.
            let caretLine = error.message.split(separator: "\n").last.map(String.init) ?? ""
            #expect(caretLine == "  " + String(repeating: " ", count: column - 1) + "^")
        }
    }

    /// Six versions, version i created on 2026-12-0i at i:00:00.5 UTC; version 4 accepted and in production.
    private func registry() throws -> Registry {
        let moment = SetClock()
        let registry = try Registry(dataDirectory: TestData.temporaryFolder(), clock: { moment.seconds })
        let accuracies = [0.70, 0.91, 0.88, 0.95, nil, 0.93]
        for (i, accuracy) in accuracies.enumerated() {
            moment.seconds = 1_796_083_200 + Double(i) * 86_400 + Double(i + 1) * 3_600 + 0.5
            try registry.register(try newVersion(
                seed: UInt64(i + 1), parent: i > 0 ? Int64(i) : nil, round: (i + 1) * 5, accuracy: accuracy,
                tags: i % 2 == 0 ? ["team": "vision", "size": "\(i * 10)"] : ["team": "speech"]))
        }
        try registry.setStatus(of: 4, to: .accepted, actor: "gate", reason: "ok")
        try registry.promote(4, actor: "policy", reason: "best")
        return registry
    }

    @Test func hashTakesAPrefixAsEveryVersionArgumentDoes() throws {
        let reader = try registry().reader
        let third = try reader.version(3).hash
        let fifth = try reader.version(5).hash
        #expect(try reader.query("hash = \"\(third.prefix(6))\"").map(\.id) == [3])
        #expect(try reader.query("hash = \(third.prefix(8))").map(\.id) == [3])
        #expect(try reader.query("hash = '\(third.prefix(10).uppercased())'").map(\.id) == [3])
        #expect(try reader.query("hash = \"\(third)\"").map(\.id) == [3])
        #expect(try reader.query("hash != \"\(third.prefix(6))\"").map(\.id) == [6, 5, 4, 2, 1])
        #expect(try reader.query("hash in (\"\(third.prefix(6))\", \"\(fifth.prefix(7))\")").map(\.id) == [5, 3])
        // The prefix the list shows (12 digits) finds its version, as `registry show` does.
        #expect(try reader.resolve(String(third.prefix(12))).id == (try reader.query("hash = \"\(third.prefix(12))\"").first?.id))
    }

    @Test func createdComparesAsTheDateItIsShownAs() throws {
        let reader = try registry().reader
        #expect(RegistryReport.time(try reader.version(3).createdAt) == "2026-12-03T03:00:00Z")
        #expect(try reader.query("created = 2026-12-03").map(\.id) == [3])
        #expect(try reader.query("created = \"2026-12-03T03:00:00Z\"").map(\.id) == [3])
        #expect(try reader.query("created = '2026-12-03 03:00:00'").map(\.id) == [3])
        #expect(try reader.query("created = 2026-12-03T03:00Z").map(\.id) == [3])
        #expect(try reader.query("created = 2026-12-03T03:00:01Z").isEmpty)
        #expect(try reader.query("created != 2026-12-03").map(\.id) == [6, 5, 4, 2, 1])
        #expect(try reader.query("created > 2026-12-04").map(\.id) == [6, 5])
        #expect(try reader.query("created >= 2026-12-04").map(\.id) == [6, 5, 4])
        #expect(try reader.query("created < 2026-12-02").map(\.id) == [1])
        #expect(try reader.query("created <= 2026-12-02").map(\.id) == [2, 1])
        #expect(try reader.query("created between 2026-12-02 and 2026-12-04").map(\.id) == [4, 3, 2])
        #expect(try reader.query("created in (2026-12-01, \"2026-12-06\")").map(\.id) == [6, 1])
        #expect(try reader.query("created > 1796300000").map(\.id) == [6, 5, 4])
        #expect(RegistryQuery.dateSpan("2000-02-29")?.start == 951_782_400)
        #expect(RegistryQuery.dateSpan("1969-12-31T23:59Z").map { [$0.start, $0.end] } == [-60, 0])
        #expect(RegistryQuery.dateSpan("2001-02-29") == nil && RegistryQuery.dateSpan("2026-13-01") == nil)
    }

    @Test func inAndBetween() throws {
        let reader = try registry().reader
        #expect(try reader.query("round in (5, 15, 30)").map(\.id) == [6, 3, 1])
        #expect(try reader.query("round not in (5, 15, 30)").map(\.id) == [5, 4, 2])
        #expect(try reader.query("accuracy between 0.88 and 0.93").map(\.id) == [6, 3, 2])
        #expect(try reader.query("accuracy not between 0.88 and 0.93").map(\.id) == [4, 1])
        #expect(try reader.query("round between 10 and 20 and accuracy > 0.9").map(\.id) == [4, 2])
        #expect(try reader.query("status in (candidate, accepted) and version in (1, 4)").map(\.id) == [4, 1])
        #expect(try reader.query("alias in (production, nothing)").map(\.id) == [4])
        #expect(try reader.query("alias not in (production)").count == 5)
        #expect(try reader.query("tag.team in (\"vision\", 'none')").map(\.id) == [5, 3, 1])
        #expect(try reader.query("tag.size between 10 and 40").map(\.id) == [5, 3])
        // Version 5 has no accuracy: as in SQL, a comparison with no value is neither true nor false.
        #expect(try reader.query("not (round in (5, 10) or accuracy between 0.9 and 1)").map(\.id) == [3])
    }

    @Test func nestingIsBoundedWithAParseErrorAtTheTokenPastTheBound() throws {
        let reader = try registry().reader
        let bound = RegistryQuery.maximumDepth
        // At the bound, every shape of nesting still runs on SQLite.
        let deepest = [
            String(repeating: "(", count: bound) + "round > 1" + String(repeating: ")", count: bound),
            String(repeating: "not ", count: bound) + "round > 1",
            String(repeating: "not (", count: bound / 2) + "tag.size >= 0 and alias != x" + String(repeating: ")", count: bound / 2),
        ]
        for query in deepest { _ = try reader.query(query) }
        for (depth, opener) in [(bound + 1, "("), (100, "("), (30_000, "("), (100, "not "), (100, "not (")] {
            let query = String(repeating: opener, count: depth) + "round > 1" + String(repeating: ")", count: opener.contains("(") ? depth : 0)
            do {
                _ = try reader.query(query)
                Issue.record("\(depth) × \(opener) should not parse")
            } catch {
                #expect(error.code == .query && error.message.contains("nested more than \(bound) deep"), "\(error.message.prefix(200))")
                // The caret sits under the opener past the bound ("not (" nests twice).
                let column = bound / (opener == "not (" ? 2 : 1) * opener.count + 1
                #expect(error.message.contains("(column \(column))"), "\(error.message.prefix(200))")
                let caret = error.message.split(separator: "\n").last.map(String.init) ?? ""
                #expect(caret == "  " + String(repeating: " ", count: column - 1) + "^")
            }
        }
        // Long flat chains compile flat: the most comparisons run; one more is a parse error.
        let most = (0..<RegistryQuery.maximumComparisons).map { "round = \($0)" }.joined(separator: " or ")
        #expect(try reader.query(most).map(\.id) == [6, 5, 4, 3, 2, 1])
        #expect(try reader.query((0..<RegistryQuery.maximumComparisons).map { _ in "round > 0" }.joined(separator: " and ")).count == 6)
        #expect(throws: RegistryError.self) { _ = try reader.query(most + " or round = 1") }
        let list = "version in (" + (1...RegistryQuery.maximumListValues).map(String.init).joined(separator: ", ") + ")"
        #expect(try reader.query(list).count == 6)
    }

    /// Random and mutated queries: the parser never crashes, and either refuses a query with a parse error or
    /// gives SQL that SQLite runs. 2,000 queries in the suite; FLOCK_FUZZ_ITERATIONS=N runs N.
    @Test func fuzzedQueriesParseOrFailWithAParseError() throws {
        let reader = try registry().reader
        let iterations = ProcessInfo.processInfo.environment["FLOCK_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 2_000
        let seed = ProcessInfo.processInfo.environment["FLOCK_FUZZ_SEED"].flatMap(UInt64.init) ?? 17
        var random = SeededGenerator(seed: seed)
        let fragments = [
            "version", "round", "accuracy", "loss", "federated_accuracy", "created", "parent", "model", "status", "hash",
            "alias", "tag.team", "tag.size", "tag.", "tag", "and", "or", "not", "in", "between", "order", "by", "limit",
            "asc", "desc", "=", "==", "!=", "<>", "<", "<=", ">", ">=", "!", "(", ")", ",", "\"", "'", "0", "1", "-1", "0.9",
            "1e999", "-0", "1e", "99999999999999999999", "2026-12-03", "2026-12-03T03:00Z", "2026-02-30", "9ced44",
            "\"vision\"", "'x'", "production", "candidate", "é", "\u{0}", "%", "_", "--", ";", "/*", "\\", " ", "\t",
        ]
        let seeds = [
            "accuracy >= 0.9 and round > 10 order by accuracy desc limit 5", "alias = production", "tag.team = \"vision\"",
            "round in (5, 15, 30)", "created between 2026-12-02 and 2026-12-04", "hash = \"9ced44\"",
            "not (round in (5, 10) or accuracy between 0.9 and 1)", "(accuracy < 0.8 or accuracy > 0.94) and status = candidate",
        ]
        var refused = 0
        for _ in 0..<iterations {
            var text: String
            switch random.next() % 3 {
            case 0:
                text = (0..<Int(random.next() % 24)).map { _ in fragments.randomElement(using: &random)! }.joined(separator: " ")
            case 1:
                var characters = Array(seeds.randomElement(using: &random)!)
                for _ in 0..<(1 + Int(random.next() % 4)) where !characters.isEmpty {
                    let at = Int(random.next() % UInt64(characters.count))
                    switch random.next() % 4 {
                    case 0: characters.remove(at: at)
                    case 1: characters.insert(Array("()\"',<>=!-.eE0123456789 abcnot").randomElement(using: &random)!, at: at)
                    case 2:
                        let piece = Array(characters[at...].prefix(Int(random.next() % 12)))
                        characters.insert(contentsOf: piece, at: at)
                    default: characters.swapAt(at, Int(random.next() % UInt64(characters.count)))
                    }
                }
                text = String(characters)
            default:
                let depth = Int(random.next() % 48)
                let opener = ["(", "not ", "not ("].randomElement(using: &random)!
                let chain = (0..<(1 + Int(random.next() % 8))).map { _ in seeds.randomElement(using: &random)!.components(separatedBy: " order")[0] }
                text = String(repeating: opener, count: depth) + chain.joined(separator: random.next() % 2 == 0 ? " and " : " or ")
                    + String(repeating: ")", count: opener.contains("(") ? depth : 0)
            }
            do {
                _ = try RegistryQuery(text).run(on: reader)
            } catch {
                refused += 1
                #expect(error.code == .query, "\(text.debugDescription): \(error.message)")
            }
        }
        // Both outcomes happen: the inputs reach past the lexer.
        #expect(refused > iterations / 10 && refused < iterations)
    }

    @Test func valuesAreBoundNotSpliced() throws {
        let reader = try registry().reader
        #expect(try reader.query("strategy = \"x' OR 1=1 --\"").isEmpty)
        #expect(try reader.versions().count == 6)
    }
}

/// A clock a test sets by hand.
final class SetClock: Sendable {
    private let stored = Mutex<Double>(0)

    /// The time it reads, in seconds since 1970.
    var seconds: Double {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}
