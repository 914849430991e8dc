import FlockCore
import Foundation
import Testing

@Suite struct ClassBalanceTests {
    @Test func countsSharesAndRatio() {
        let balance = ClassBalance(labels: [2, 0, 0, 1, 0, 2])
        #expect(balance.counts == [3, 1, 2])
        #expect(balance.total == 6)
        #expect(balance.classCount == 3)
        #expect(balance.shares == [0.5, 1.0 / 6.0, 2.0 / 6.0])
        #expect(balance.imbalanceRatio == 3)
        #expect(balance.missingClasses.isEmpty)
    }

    @Test func balancedClassesHaveRatioOne() {
        let labels = (0..<100).map { Int32($0 % 10) }
        let balance = ClassBalance(labels: labels, classCount: 10)
        #expect(balance.counts == Array(repeating: 10, count: 10))
        #expect(balance.imbalanceRatio == 1)
    }

    @Test func missingClassesMakeTheRatioInfinite() {
        let balance = ClassBalance(labels: [0, 0, 2, 4], classCount: 6)
        #expect(balance.counts == [2, 0, 1, 0, 1, 0])
        #expect(balance.missingClasses == [1, 3, 5])
        #expect(balance.imbalanceRatio == .infinity)
    }

    @Test func labelsBeyondTheClassCountWidenIt() {
        let balance = ClassBalance(labels: [0, 1, 4], classCount: 2)
        #expect(balance.classCount == 5)
        #expect(balance.missingClasses == [2, 3])
    }

    @Test func emptyLabels() {
        let none = ClassBalance(labels: [])
        #expect(none.counts.isEmpty)
        #expect(none.total == 0)
        #expect(none.imbalanceRatio == 1)

        let allMissing = ClassBalance(labels: [], classCount: 2)
        #expect(allMissing.shares == [0, 0])
        #expect(allMissing.missingClasses == [0, 1])
        #expect(allMissing.imbalanceRatio == .infinity)
    }

    @Test func rendersAnAlignedTable() {
        let balance = ClassBalance(labels: [Int32](repeating: 0, count: 1200) + [Int32](repeating: 1, count: 300))
        #expect(
            balance.render() == """
                class  count   share
                    0   1200   80.0%
                    1    300   20.0%
                total   1500  100.0%
                imbalance ratio (largest / smallest class): 4.00
                """
        )
    }

    @Test func rendersMissingClasses() {
        let text = ClassBalance(labels: [0, 0, 1], classCount: 4).render()
        let lines = text.split(separator: "\n")
        #expect(lines.count == 7)
        #expect(lines[1] == "    0      2   66.7%")
        #expect(lines[3] == "    2      0    0.0%")
        #expect(lines.last == "imbalance ratio (largest / smallest class): infinite (classes 2, 3 have no rows)")
        let one = ClassBalance(labels: [0, 2]).render()
        #expect(one.hasSuffix("infinite (class 1 has no rows)"))
    }

    @Test func jsonWritesInfinityAsNull() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let skewed = ClassBalance(labels: [0, 0, 2])
        let json = String(decoding: try encoder.encode(skewed), as: UTF8.self)
        #expect(json.contains(#""imbalanceRatio":null"#))
        #expect(json.contains(#""missingClasses":[1]"#))
        #expect(try JSONDecoder().decode(ClassBalance.self, from: Data(json.utf8)) == skewed)

        let even = ClassBalance(labels: [0, 1, 1])
        let evenJSON = try encoder.encode(even)
        #expect(String(decoding: evenJSON, as: UTF8.self).contains(#""imbalanceRatio":2"#))
        #expect(try JSONDecoder().decode(ClassBalance.self, from: evenJSON) == even)
    }
}
