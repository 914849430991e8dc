import FlockCore
import Testing

import FlockRegistry

/// The promotion test: its looks, its guards, and its error rate under repeated looks, checked by simulation.
@Suite struct NonInferiorityTestTests {
    private func evidence(_ edge: String, right: Int, onlyControl: Int, onlyTreatment: Int, wrong: Int) -> EdgeEvidence {
        var c = PairedComparison()
        c.bothRight = right
        c.onlyServedRight = onlyControl
        c.onlyComparedRight = onlyTreatment
        c.bothWrong = wrong
        c.agreements = right + wrong
        return EdgeEvidence(analysis: 1, edge: edge, comparison: c, servedIsTreatment: false, at: 0)
    }

    @Test func latencyIsComparedPairedByCallAndOrientedByRole() {
        var c = PairedComparison()
        c.servedLatencyMs = [1, 2, 3, 10]
        c.comparedLatencyMs = [2, 4, 6, 11]
        // Differences (compared - served): 1, 2, 3, 1: their median (nearest rank) is 1.
        #expect(EdgeEvidence(analysis: 1, edge: "a", comparison: c, servedIsTreatment: false, at: 0).latencyDifferenceMs == 1)
        #expect(EdgeEvidence(analysis: 1, edge: "a", comparison: c, servedIsTreatment: true, at: 0).latencyDifferenceMs == -1)
        #expect(EdgeEvidence(analysis: 1, edge: "a", comparison: c, servedIsTreatment: true, at: 0).treatmentP99Ms == 10)
    }

    @Test func noDecisionBeforeTheMinimumPairsAndEdges() {
        let settings = AnalysisSettings(minimumPairs: 200, minimumEdges: 3)
        let twoEdges = [evidence("a", right: 500, onlyControl: 0, onlyTreatment: 0, wrong: 0), evidence("b", right: 500, onlyControl: 0, onlyTreatment: 0, wrong: 0)]
        #expect(NonInferiorityTest.judge(twoEdges, settings: settings, looksTaken: 0).verdict == .waiting)
        let fewPairs = ["a", "b", "c"].map { evidence($0, right: 60, onlyControl: 0, onlyTreatment: 0, wrong: 0) }
        #expect(NonInferiorityTest.judge(fewPairs, settings: settings, looksTaken: 0).verdict == .waiting)
    }

    @Test func identicalModelsPassAndAMuchWorseOneFails() {
        let settings = AnalysisSettings(margin: 0.02)
        let same = ["a", "b", "c"].map { evidence($0, right: 300, onlyControl: 2, onlyTreatment: 2, wrong: 30) }
        let judged = NonInferiorityTest.judge(same, settings: settings, looksTaken: 0)
        #expect(judged.verdict == .passed)
        #expect(judged.looksTaken == 3)  // 1,002 pairs reach the looks at 200, 400 and 800: judged once, at 800.
        #expect((judged.evidence.lower ?? -1) > -0.02)
        let worse = ["a", "b", "c"].map { evidence($0, right: 200, onlyControl: 100, onlyTreatment: 5, wrong: 30) }
        guard case .failed = NonInferiorityTest.judge(worse, settings: settings, looksTaken: 0).verdict else {
            Issue.record("a treatment 28 points worse must fail")
            return
        }
    }

    @Test func aLookIsTakenOnceAndTheLastUndecidedLookIsInconclusive() {
        let settings = AnalysisSettings(margin: 0.02, minimumPairs: 100, looks: 2)
        // 17% discordant, nearly evenly split: the interval straddles -0.02 at 120 pairs (look 1 of 2).
        let split = ["a", "b", "c"].map { evidence($0, right: 30, onlyControl: 4, onlyTreatment: 3, wrong: 3) }
        let first = NonInferiorityTest.judge(split, settings: settings, looksTaken: 0)
        #expect(first.verdict == .continuing && first.looksTaken == 1)
        #expect(NonInferiorityTest.judge(split, settings: settings, looksTaken: 1).verdict == .waiting)
        let more = ["a", "b", "c"].map { evidence($0, right: 60, onlyControl: 8, onlyTreatment: 6, wrong: 6) }
        #expect(NonInferiorityTest.judge(more, settings: settings, looksTaken: 1).verdict == .inconclusive)
    }

    @Test func brokenBoundsAndBadNumbersNeverPass() {
        var settings = AnalysisSettings(maximumLatencyP99Ms: 5)
        var slow = ["a", "b", "c"].map { evidence($0, right: 300, onlyControl: 0, onlyTreatment: 0, wrong: 0) }
        for i in slow.indices { slow[i].treatmentP99Ms = 9 }
        guard case .failed = NonInferiorityTest.judge(slow, settings: settings, looksTaken: 0).verdict else {
            Issue.record("a p99 above the bound must fail")
            return
        }
        settings.maximumLatencyP99Ms = nil
        var nan = slow
        nan[0].lossDifferenceSum = .nan
        #expect(NonInferiorityTest.judge(nan, settings: settings, looksTaken: 0).verdict == .waiting)
        var erring = slow
        erring[1].treatmentErrors = 50
        guard case .failed = NonInferiorityTest.judge(erring, settings: settings, looksTaken: 0).verdict else {
            Issue.record("non-finite outputs on 5% of rows must fail")
            return
        }
    }

    /// The error rate over a whole sequential analysis, looking after every report: with the true difference
    /// exactly at -δ, a pass is a wrong decision and must happen in at most α of the analyses; with a true
    /// difference of 0, a failure is wrong too.
    @Test func wrongDecisionsStayBelowAlphaUnderRepeatedLooks() {
        let settings = AnalysisSettings(margin: 0.03, alpha: 0.05, minimumPairs: 100, minimumEdges: 1, looks: 5)
        var rng = SeededGenerator(seed: 2026)
        func run(onlyControl pB: Double, onlyTreatment pC: Double) -> NonInferiorityTest.Verdict {
            var e = evidence("a", right: 0, onlyControl: 0, onlyTreatment: 0, wrong: 0)
            var looks = 0
            for _ in 0..<160 {  // reports of 25 pairs each, up to 4,000 pairs
                for _ in 0..<25 {
                    let u = rng.nextUnit()
                    if u < pB { e.onlyControl += 1 } else if u < pB + pC { e.onlyTreatment += 1 } else { e.bothRight += 1 }
                }
                let judged = NonInferiorityTest.judge([e], settings: settings, looksTaken: looks)
                looks = judged.looksTaken
                switch judged.verdict {
                case .waiting, .continuing: continue
                default: return judged.verdict
                }
            }
            return .inconclusive
        }
        let trials = 400
        var falsePasses = 0
        var falseFailures = 0
        for _ in 0..<trials {
            // d = 0.05 - 0.08 = -0.03 = -δ.
            if run(onlyControl: 0.08, onlyTreatment: 0.05) == .passed { falsePasses += 1 }
            if case .failed = run(onlyControl: 0.05, onlyTreatment: 0.05) { falseFailures += 1 }
        }
        #expect(Double(falsePasses) / Double(trials) <= 0.05)
        #expect(Double(falseFailures) / Double(trials) <= 0.05)
        // And the test is not vacuous: a clearly non-inferior treatment passes most of the time.
        var passes = 0
        for _ in 0..<100 where run(onlyControl: 0.04, onlyTreatment: 0.05) == .passed { passes += 1 }
        #expect(passes >= 80)
    }
}
