import Foundation
import Testing

import FlockRegistry

/// The exact binomial tools against closed forms, direct sums and published values.
@Suite struct ExactTestsTests {
    /// P(X <= k) by direct summation of the binomial probabilities.
    private func directCDF(_ k: Int, n: Int, p: Double) -> Double {
        var total = 0.0
        for i in 0...k {
            let logChoose = lgamma(Double(n + 1)) - lgamma(Double(i + 1)) - lgamma(Double(n - i + 1))
            total += exp(logChoose + Double(i) * log(p) + Double(n - i) * log1p(-p))
        }
        return total
    }

    @Test func incompleteBetaMatchesClosedForms() {
        // I_x(1, b) = 1 - (1 - x)^b and I_x(a, 1) = x^a.
        for x in [0.01, 0.2, 0.5, 0.77, 0.99] {
            #expect(abs(ExactTests.incompleteBeta(x, a: 1, b: 3) - (1 - pow(1 - x, 3))) < 1e-12)
            #expect(abs(ExactTests.incompleteBeta(x, a: 4, b: 1) - pow(x, 4)) < 1e-12)
        }
        // I_0.5(2, 3) = 11/16.
        #expect(abs(ExactTests.incompleteBeta(0.5, a: 2, b: 3) - 0.6875) < 1e-12)
    }

    @Test(arguments: [(20, 0.3), (57, 0.5), (200, 0.05), (1000, 0.91)])
    func binomialCDFMatchesDirectSums(n: Int, p: Double) {
        for k in stride(from: 0, to: n, by: max(1, n / 17)) {
            let direct = directCDF(k, n: n, p: p)
            #expect(abs(ExactTests.binomialCDF(k, n: n, p: p) - direct) < 1e-9 * max(1, direct), "k \(k)")
        }
    }

    @Test func clopperPearsonMatchesPublishedIntervals() {
        // 5 of 10 at 95%: (0.187086, 0.812914); 0 of 20: (0, 0.168433); 20 of 20: (0.831567, 1).
        let half = ExactTests.clopperPearson(successes: 5, trials: 10, alpha: 0.05)
        #expect(abs(half.lower - 0.187086) < 1e-6 && abs(half.upper - 0.812914) < 1e-6)
        let none = ExactTests.clopperPearson(successes: 0, trials: 20, alpha: 0.05)
        #expect(none.lower == 0 && abs(none.upper - 0.168433) < 1e-6)
        let all = ExactTests.clopperPearson(successes: 20, trials: 20, alpha: 0.05)
        #expect(abs(all.lower - 0.831567) < 1e-6 && all.upper == 1)
    }

    @Test func mcNemarExactIsTheTwoSidedBinomialTail() {
        // b = 1, c = 9: 2 · P(X <= 1 | 10, 1/2) = 2 · 11 / 1024.
        #expect(abs(ExactTests.mcNemarExact(b: 1, c: 9) - 22.0 / 1024) < 1e-12)
        #expect(ExactTests.mcNemarExact(b: 7, c: 7) == 1)
        #expect(ExactTests.mcNemarExact(b: 0, c: 0) == 1)
    }

    @Test func normalQuantileMatchesTables() {
        #expect(abs(ExactTests.normalQuantile(0.975) - 1.959964) < 1e-6)
        #expect(abs(ExactTests.normalQuantile(0.5)) < 1e-9)
        #expect(abs(ExactTests.normalQuantile(0.001) + 3.090232) < 1e-6)
    }
}
