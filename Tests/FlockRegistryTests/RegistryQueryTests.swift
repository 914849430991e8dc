import FlockTestSupport
import Testing

import FlockRegistry

/// `registry query`: results on a real registry, and errors that point at the offending token.
@Suite struct RegistryQueryTests {
    private func registry() throws -> Registry {
        let registry = try Registry(dataDirectory: TestData.temporaryFolder())
        let accuracies = [0.70, 0.91, 0.88, 0.95, nil, 0.93]
        for (i, accuracy) in accuracies.enumerated() {
            try registry.register(try newVersion(
                seed: UInt64(i + 1), parent: i > 0 ? Int64(i) : nil, round: (i + 1) * 5, accuracy: accuracy,
                tags: i % 2 == 0 ? ["team": "vision", "size": "\(i * 10)"] : ["team": "speech"]))
        }
        try registry.setStatus(of: 4, to: .accepted, actor: "gate", reason: "ok")
        try registry.promote(4, actor: "policy", reason: "best")
        return registry
    }

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
        ("alias > production", 7, "alias compares only with = or !="),
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

    @Test func valuesAreBoundNotSpliced() throws {
        let reader = try registry().reader
        #expect(try reader.query("strategy = \"x' OR 1=1 --\"").isEmpty)
        #expect(try reader.versions().count == 6)
    }
}
