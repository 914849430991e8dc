import Foundation

/// Exact binomial tools behind the promotion analyses: the regularized incomplete beta function, Clopper–Pearson
/// bounds, McNemar's exact test, and the normal quantile.
///
/// The incomplete beta is evaluated by its continued fraction with the modified Lentz method (as in Press et
/// al., "Numerical Recipes", §6.4); quantiles by bisection, which is slow by the standards of special-function
/// libraries but exact to 1e-12 and simple to check.
public enum ExactTests {
    /// The regularized incomplete beta function I_x(a, b) for a, b > 0 and x in [0, 1].
    /// - Complexity: O(iterations) with at most 300 continued-fraction steps.
    public static func incompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        precondition(a > 0 && b > 0, "the beta function needs positive a and b")
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)
        // The continued fraction converges fast for x below the mean; use the symmetry I_x(a,b) = 1 - I_{1-x}(b,a).
        if x < (a + 1) / (a + b + 2) {
            return exp(logFront) * continuedFraction(x, a: a, b: b) / a
        }
        return 1 - exp(logFront) * continuedFraction(1 - x, a: b, b: a) / b
    }

    private static func continuedFraction(_ x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300
        var c = 1.0
        var d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...300 {
            let m = Double(m)
            let even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + even * d
            if abs(d) < tiny { d = tiny }
            c = 1 + even / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            let odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + odd * d
            if abs(d) < tiny { d = tiny }
            c = 1 + odd / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let step = d * c
            h *= step
            if abs(step - 1) < 1e-15 { break }
        }
        return h
    }

    /// P(X <= k) for X ~ Binomial(n, p).
    public static func binomialCDF(_ k: Int, n: Int, p: Double) -> Double {
        if k < 0 { return 0 }
        if k >= n { return 1 }
        return incompleteBeta(1 - p, a: Double(n - k), b: Double(k + 1))
    }

    /// The x in [0, 1] where the increasing function `f` crosses `target`, by bisection.
    private static func solve(_ target: Double, _ f: (Double) -> Double) -> Double {
        var low = 0.0
        var high = 1.0
        for _ in 0..<200 where high - low > 1e-13 {
            let mid = (low + high) / 2
            if f(mid) < target { low = mid } else { high = mid }
        }
        return (low + high) / 2
    }

    /// The Clopper–Pearson interval for a binomial proportion after `successes` of `trials`, each side at
    /// error `alpha / 2` (exact: it covers the true proportion with probability at least 1 - alpha).
    /// - Returns: (0, 1) when there are no trials.
    public static func clopperPearson(successes: Int, trials: Int, alpha: Double) -> (lower: Double, upper: Double) {
        precondition(successes >= 0 && successes <= trials, "successes must lie in 0...trials")
        guard trials > 0 else { return (0, 1) }
        let x = Double(successes)
        let n = Double(trials)
        // Lower: the p where P(X >= x | p) = alpha/2, i.e. the alpha/2 quantile of Beta(x, n - x + 1).
        let lower = successes == 0 ? 0 : solve(alpha / 2) { incompleteBeta($0, a: x, b: n - x + 1) }
        let upper = successes == trials ? 1 : solve(1 - alpha / 2) { incompleteBeta($0, a: x + 1, b: n - x) }
        return (lower, upper)
    }

    /// McNemar's exact test: the two-sided p-value of `b` against `c` discordant pairs under the hypothesis that
    /// either kind is as likely (X ~ Binomial(b + c, 1/2)). 1 when there are no discordant pairs.
    public static func mcNemarExact(b: Int, c: Int) -> Double {
        let m = b + c
        guard m > 0 else { return 1 }
        return min(1, 2 * binomialCDF(min(b, c), n: m, p: 0.5))
    }

    /// The standard normal quantile: the z with Φ(z) = p, for p in (0, 1).
    public static func normalQuantile(_ p: Double) -> Double {
        precondition(p > 0 && p < 1, "a normal quantile needs p in (0, 1)")
        var low = -40.0
        var high = 40.0
        for _ in 0..<200 where high - low > 1e-12 {
            let mid = (low + high) / 2
            if 0.5 * erfc(-mid / 2.0.squareRoot()) < p { low = mid } else { high = mid }
        }
        return (low + high) / 2
    }
}
