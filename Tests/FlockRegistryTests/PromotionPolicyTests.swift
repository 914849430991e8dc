import FlockCore
import FlockTestSupport
import Foundation
import Testing

import FlockRegistry

/// The policy settings both suites below run with: a gate at 0.5, a 2-point margin, 200 pairs from 3 edges, 4 looks.
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

/// The continual loop on a real registry: the gate, a shadow that promotes, a shadow that rejects, and a
/// forced bad promotion that the rollback analysis undoes — each step in the audit log with its evidence.
@Suite struct PromotionPolicyTests {
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

/// Continuous training: a new version every round, while analyses need time; pins and rollbacks an operator
/// makes; and the operator told when an analysis's evidence cannot reach its first look.
@Suite struct PromotionQueueTests {
    @Test func manyCandidatesInARowTheFirstAnalysisStillConcludesAndProductionMoves() throws {
        let registry = try Registry(dataDirectory: TestData.temporaryFolder())
        let policy = try PromotionPolicy(registry: registry, settings: settings)
        try policy.admit(try registry.register(try newVersion(seed: 1, round: 1, accuracy: 0.9)).id)
        // Versions 2 to 12, one per round, each accepted while the first shadow analysis gathers evidence.
        var lines: [String] = []
        for round in 2...12 {
            let v = try registry.register(try newVersion(seed: UInt64(round), parent: Int64(round - 1), round: round, accuracy: 0.9))
            lines.append(try policy.admit(v.id))
        }
        #expect(lines[0].contains("shadow analysis 1 against production version 1"))
        #expect(lines.dropFirst().allSatisfy { $0.contains("queued behind shadow analysis 1 of version 2") }, "\(lines)")
        #expect(try registry.reader.analyses(state: .running).map(\.treatment) == [2])
        #expect(try registry.reader.analyses(state: .inconclusive).isEmpty)
        #expect(try registry.reader.alias(Alias.candidate)?.version == 12)

        let analysis = try #require(try policy.deployment(for: "a").analysis)
        let production = try registry.reader.version(1)
        let shadowed = try registry.reader.version(2)
        var decision: String?
        for edge in ["a", "b", "c"] {
            decision = try policy.receive(edge: edge, analysis: analysis, served: production.hash, compared: shadowed.hash,
                                          comparison: comparison(rows: 300, onlyServed: 1, onlyCompared: 3))
        }
        #expect(decision?.contains("version 2 promoted to production") == true, "\(decision ?? "nil")")
        #expect(decision?.contains("of version 12, the newest queued, against production version 2 (9 older queued versions skipped)") == true)
        #expect(try registry.reader.alias(Alias.production)?.version == 2)
        #expect(try registry.reader.analyses().first { $0.id == analysis }?.state == .passed)
        // The next shadow compares the newest version with the new production; the skipped ones stay accepted.
        let next = try policy.deployment(for: "a")
        #expect(next.production?.id == 2 && next.compared?.id == 12)
        #expect(try registry.reader.version(7).status == .accepted)
        #expect(try registry.reader.analyses().allSatisfy { $0.reason?.contains("superseded") != true })
    }

    @Test func anAnalysisWhoseEvidenceCannotReachMinPairsSaysSoOnce() throws {
        let registry = try Registry(dataDirectory: TestData.temporaryFolder())
        let lines = Lines()
        let policy = try PromotionPolicy(registry: registry, settings: settings, log: { lines.append($0) })
        try policy.admit(try registry.register(try newVersion(seed: 1, round: 1, accuracy: 0.9)).id)
        let candidate = try registry.register(try newVersion(seed: 2, parent: 1, round: 2, accuracy: 0.9))
        try policy.admit(candidate.id)
        let analysis = try #require(try policy.deployment(for: "a").analysis)
        let production = try registry.reader.version(1)
        // 40 labelled rows an edge, three edges in the cohort: about 120 of the 200 pairs.
        for edge in ["a", "b"] {
            try policy.receive(edge: edge, analysis: analysis, served: production.hash, compared: candidate.hash,
                               comparison: comparison(rows: 40, onlyServed: 1, onlyCompared: 1), cohortEdges: 3)
        }
        let reason = try registry.reader.analyses(state: .running).first?.reason ?? ""
        #expect(reason.hasPrefix(PromotionPolicy.shortfallNote) && reason.contains("about 120 of the 200 pairs"), "\(reason)")
        #expect(lines.all.count == 1 && lines.all[0].contains("cannot reach min_pairs"), "\(lines.all)")
        // More edges connect: the cohort can now get there, and the note goes.
        try policy.receive(edge: "c", analysis: analysis, served: production.hash, compared: candidate.hash,
                           comparison: comparison(rows: 40, onlyServed: 1, onlyCompared: 1), cohortEdges: 8)
        #expect(try registry.reader.analyses(state: .running).first?.reason == "gathering evidence")
        #expect(lines.all.count == 2)

        var evidence = NonInferiorityTest.judge([], settings: settings.analysis, looksTaken: 0).evidence
        #expect(PromotionPolicy.evidenceShortfall(evidence, cohortEdges: 2, settings: settings.analysis)?.contains("min_edges") == true)
        #expect(PromotionPolicy.evidenceShortfall(evidence, cohortEdges: 5, settings: settings.analysis) == nil)
        evidence.pairs = 1_000
        evidence.edges = 3
        #expect(PromotionPolicy.evidenceShortfall(evidence, cohortEdges: 3, settings: settings.analysis) == nil)
    }

    @Test func aPinOfAVersionTheGateRejectedNeedsForceAndARollbackSaysItClearedThePin() throws {
        let registry = try Registry(dataDirectory: TestData.temporaryFolder())
        let policy = try PromotionPolicy(registry: registry, settings: settings)
        try policy.admit(try registry.register(try newVersion(seed: 1, round: 1, accuracy: 0.9)).id)
        let weak = try registry.register(try newVersion(seed: 2, parent: 1, round: 2, accuracy: 0.3))
        try policy.admit(weak.id)
        #expect(try registry.reader.version(weak.id).status == .rejected)
        do {
            try policy.pin(weak.id, actor: "admin", reason: "try", force: false)
            Issue.record("a rejected version was pinned without force")
        } catch {
            #expect(error.code == .conflict && error.message.contains("--force"), "\(error.message)")
        }
        #expect(try registry.reader.alias(Alias.production)?.version == 1)
        // Pinning production where it is needs no override; a forced pin moves it to the rejected version.
        try policy.pin(1, actor: "admin", reason: "freeze", force: false)
        #expect(try registry.reader.alias(Alias.production)?.pinned == true)
        try policy.pin(weak.id, actor: "admin", reason: "I know", force: true)
        #expect(try registry.reader.alias(Alias.production)?.version == weak.id)

        // The operator's rollback moves a pinned production, and says it cleared the pin.
        let (event, cleared) = try policy.rollback(to: nil, actor: "admin", reason: "bad idea")
        #expect(event.version == 1 && cleared == weak.id)
        #expect(event.reason == "bad idea " + Registry.pinCleared(weak.id))
        let production = try #require(try registry.reader.alias(Alias.production))
        #expect(production.version == 1 && !production.pinned)
        #expect(try registry.reader.events(alias: Alias.production).last?.reason.contains("cleared the pin") == true)
        // An unpinned rollback says nothing of pins.
        try policy.promote(weak.id, actor: "admin", reason: "again", force: true)
        let (plain, none) = try policy.rollback(to: nil, actor: "admin", reason: "undo")
        #expect(none == nil && plain.reason == "undo")
    }
}

/// Log lines a test collects.
final class Lines: @unchecked Sendable {
    // The lock makes every access to `lines` exclusive.
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
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
