#if canImport(Glibc)
import Glibc
#endif

/// How the learning rate changes over training, as a factor of the base rate at each optimizer step.
///
/// Text forms (the `--schedule` option): `constant`; `step:EVERY:GAMMA` (multiply by GAMMA every EVERY
/// epochs); `cosine` or `cosine:WARMUP` (linear warm-up over WARMUP epochs from base/warm-up-steps to
/// the base rate, then cosine decay to zero at the last step; Loshchilov & Hutter 2017, Goyal et al. 2017).
public enum LearningRateSchedule: Sendable, Codable, Equatable, CustomStringConvertible {
    /// The base rate throughout.
    case constant
    /// Multiply the rate by `gamma` every `everyEpochs` epochs.
    case step(everyEpochs: Int, gamma: Double)
    /// Linear warm-up for `warmupEpochs` epochs, then cosine decay to zero.
    case cosine(warmupEpochs: Int)

    /// Parses the text form.
    /// - Throws: ``CoreError/Code/invalidArgument`` listing the valid forms.
    public init(parsing text: String) throws(CoreError) {
        let parts = text.lowercased().split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let usage = "use constant, step:EVERY:GAMMA (e.g. step:2:0.5) or cosine[:WARMUP_EPOCHS]"
        switch parts.first {
        case "constant" where parts.count == 1:
            self = .constant
        case "step" where parts.count == 3:
            guard let every = Int(parts[1]), every > 0, let gamma = Double(parts[2]), gamma > 0, gamma.isFinite else {
                throw CoreError(.invalidArgument, "schedule '\(text)': \(usage)")
            }
            self = .step(everyEpochs: every, gamma: gamma)
        case "cosine" where parts.count <= 2:
            let warmup = parts.count == 2 ? Int(parts[1]) : 0
            guard let warmup, warmup >= 0 else { throw CoreError(.invalidArgument, "schedule '\(text)': \(usage)") }
            self = .cosine(warmupEpochs: warmup)
        default:
            throw CoreError(.invalidArgument, "unknown schedule '\(text)': \(usage)")
        }
    }

    public var description: String {
        switch self {
        case .constant: return "constant"
        case .step(let every, let gamma): return "step:\(every):\(gamma)"
        case .cosine(let warmup): return "cosine:\(warmup)"
        }
    }

    /// The factor applied to the base rate at zero-based optimizer step `step`.
    /// - Parameters:
    ///   - stepsPerEpoch: optimizer steps in one epoch.
    ///   - totalSteps: optimizer steps in the whole run.
    public func factor(step: Int, stepsPerEpoch: Int, totalSteps: Int) -> Double {
        switch self {
        case .constant:
            return 1
        case .step(let every, let gamma):
            return pow(gamma, Double(step / max(1, every * stepsPerEpoch)))
        case .cosine(let warmupEpochs):
            let warmup = warmupEpochs * stepsPerEpoch
            if step < warmup { return Double(step + 1) / Double(warmup) }
            let span = max(1, totalSteps - warmup)
            let progress = min(1, Double(step - warmup) / Double(span))
            return 0.5 * (1 + cos(Double.pi * progress))
        }
    }
}
