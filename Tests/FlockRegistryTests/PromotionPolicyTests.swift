import FlockCore
import FlockTestSupport
import Foundation
import Testing

import FlockRegistry

/// The continual loop on a real registry: the gate, a shadow that promotes, a shadow that rejects, and a
/// forced bad promotion that the rollback analysis undoes — each step in the audit log with its evidence.
@Suite struct PromotionPolicyTests {
    private let settings = PromotionSettings(
        gate: GateSettings(minimumAccuracy: 0.5, maximumDrop: 0.05),
        analysis: AnalysisSettings(margin: 0.02, minimumPairs: 200, minimumEdges: 3, looks: 4), shadowShare: 1)

    /// An edge's comparison with `onlyServed` and `onlyCompared` discordant rows out of `rows`.
    private func comparison(rows: Int, onlyServed: Int, onlyCompared: Int) -> PairedComparison {
        var c = PairedComparison()
        c.onlyServedRight = onlyServed
        c.onlyComparedRight = onlyCompared
        c.bothRight = rows - onlyServed - onlyCompared - 10
        c.bothWrong = 10
        c.agreements = c.bothRight + 10
        return c
    }

    @Test func theGateAcceptsRejectsAndTheFirstAcceptedBecomesProduction() throws {
        let registry = try Registry(dataDirectory: TestData.temporaryFolder())
        let policy = try PromotionPolicy(registry: registry, settings: settings)
        let weak = try registry.register(try newVersion(seed: 1, round: 1, accuracy: 0.3))
        #expect(try policy.admit(weak.id).contains("rejected"))
        #expect(try registry.reader.version(weak.id).status == .rejected)
        #expect(try registry.reader.alias(Alias.production) == nil)
        let good = try registry.register(try newVersion(seed: 2, round: 2, accuracy: 0.9))
        try policy.admit(good.id)
        #expect(try registry.reader.alias(Alias.production)?.version == good.id)
        let worse = try registry.register(try newVersion(seed: 3, round: 3, accuracy: 0.84))
        #expect(try policy.admit(worse.id).contains("more than 0.0500 below production's"))
        let missing = try registry.register(try newVersion(seed: 4, round: 4, accuracy: nil))
        #expect(try policy.admit(missing.id).contains("no holdout accuracy"))
    }

    @Test func aShadowThatIsNoWorseIsPromotedAndWatched() throws {
        let registry = try Registry(dataDirectory: TestData.temporaryFolder())
        let policy = try PromotionPolicy(registry: registry, settings: settings)
        try policy.admit(try registry.register(try newVersion(seed: 1, round: 1, accuracy: 0.9)).id)
        let next = try registry.register(try newVersion(seed: 2, parent: 1, round: 2, accuracy: 0.91))
        try policy.admit(next.id)
        let deployment = try policy.deployment(for: "edge-a")
        #expect(deployment.production?.id == 1 && deployment.compared?.id == next.id && !deployment.servedIsTreatment)
        let production = try registry.reader.version(1)
        // Two edges' worth is not enough edges; the third decides.
        for edge in ["a", "b"] {
            #expect(try policy.receive(edge: edge, analysis: deployment.analysis!, served: production.hash, compared: next.hash,
                                       comparison: comparison(rows: 300, onlyServed: 1, onlyCompared: 3)) == nil)
        }
        let decided = try policy.receive(edge: "c", analysis: deployment.analysis!, served: production.hash, compared: next.hash,
                                         comparison: comparison(rows: 300, onlyServed: 1, onlyCompared: 3))
        #expect(decided?.contains("promoted") == true)
        #expect(try registry.reader.alias(Alias.production)?.version == next.id)
        #expect(try registry.reader.alias(Alias.shadow) == nil)
        // Production is now watched against the one it replaced.
        let watch = try policy.deployment(for: "edge-a")
        #expect(watch.production?.id == next.id && watch.compared?.id == 1 && watch.servedIsTreatment)
        let promotion = try registry.reader.events(alias: Alias.production).last
        #expect(promotion?.kind == .promoted && promotion?.actor == "policy")
        let evidence = try JSONDecoderHelper.decode(AnalysisEvidence.self, promotion?.evidence ?? "")
        #expect(evidence.pairs == 900 && evidence.onlyTreatment == 9 && evidence.onlyControl == 3)
        #expect((evidence.lower ?? -1) > -0.02)
    }

    @Test func aWorseShadowIsRejectedAndAForcedBadPromotionIsRolledBack() throws {
        let registry = try Registry(dataDirectory: TestData.temporaryFolder())
        let policy = try PromotionPolicy(registry: registry, settings: settings)
        try policy.admit(try registry.register(try newVersion(seed: 1, round: 1, accuracy: 0.9)).id)
        let bad = try registry.register(try newVersion(seed: 2, parent: 1, round: 2, accuracy: 0.88))
        try policy.admit(bad.id)
        let shadow = try policy.deployment(for: "x")
        let production = try registry.reader.version(1)
        for edge in ["a", "b", "c"] {
            try policy.receive(edge: edge, analysis: shadow.analysis!, served: production.hash, compared: bad.hash,
                               comparison: comparison(rows: 300, onlyServed: 60, onlyCompared: 2))
        }
        #expect(try registry.reader.version(bad.id).status == .rejected)
        #expect(try registry.reader.alias(Alias.production)?.version == 1)

        // The operator forces it anyway; the rollback analysis sees production lose to its predecessor.
        try policy.promote(bad.id, actor: "admin", reason: "trust me", force: true)
        let watch = try policy.deployment(for: "x")
        #expect(watch.servedIsTreatment && watch.compared?.id == 1)
        // A report about other models is refused.
        #expect(throws: RegistryError.self) {
            try policy.receive(edge: "a", analysis: watch.analysis!, served: production.hash, compared: bad.hash,
                               comparison: comparison(rows: 300, onlyServed: 0, onlyCompared: 60))
        }
        var outcome: String?
        for edge in ["a", "b", "c"] {
            outcome = try policy.receive(edge: edge, analysis: watch.analysis!, served: bad.hash, compared: production.hash,
                                         comparison: comparison(rows: 300, onlyServed: 2, onlyCompared: 60))
        }
        #expect(outcome?.contains("rolled back from version 2 to version 1") == true)
        #expect(try registry.reader.alias(Alias.production)?.version == 1)
        let kinds = try registry.reader.events(alias: Alias.production).map(\.kind)
        #expect(kinds == [.promoted, .promoted, .rolledBack])
        #expect(try registry.reader.events(alias: Alias.production).last?.evidence?.contains("\"only_control\":180") == true)
    }
}

/// Decodes JSON text in tests.
enum JSONDecoderHelper {
    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }
}

/// Which edges run what: a stable cohort of about the configured share.
@Suite struct DeploymentPlanTests {
    @Test func theShadowCohortIsAStableShareOfTheEdges() throws {
        let edges = (0..<2_000).map { "edge-\($0)" }
        for share in [0.1, 0.5, 0.9] {
            let inCohort = edges.filter { DeploymentPlan.inShadowCohort(edge: $0, analysis: 7, share: share) }.count
            #expect(abs(Double(inCohort) / 2_000 - share) < 0.04, "share \(share): \(inCohort)")
        }
        // The same edge, the same analysis: the same answer; another analysis draws another cohort.
        let first = edges.filter { DeploymentPlan.inShadowCohort(edge: $0, analysis: 7, share: 0.5) }
        #expect(first == edges.filter { DeploymentPlan.inShadowCohort(edge: $0, analysis: 7, share: 0.5) })
        #expect(first != edges.filter { DeploymentPlan.inShadowCohort(edge: $0, analysis: 8, share: 0.5) })
    }
}
