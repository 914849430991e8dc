import FlockCore
import Foundation

/// What `flock-server registry` prints: plain tables for people, and stable JSON (`--json`) for programs.
///
/// JSON field names are snake_case and documented in the README; a version is the ``ModelVersion`` row plus
/// `tags` and `aliases`.
public enum RegistryReport {
    /// A version as `--json` prints it.
    public struct VersionJSON: Encodable {
        /// The row.
        public var version: ModelVersion
        /// Its tags.
        public var tags: [String: String]
        /// Aliases pointing at it.
        public var aliases: [String]

        public func encode(to encoder: Encoder) throws {
            try version.encode(to: encoder)
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(tags, forKey: .tags)
            try container.encode(aliases, forKey: .aliases)
        }

        enum Keys: String, CodingKey { case tags, aliases }
    }

    /// A version as `registry show --json` prints it: the ``VersionJSON`` fields and its `events`, oldest first.
    public struct ShowJSON: Encodable {
        /// The version, its tags and aliases.
        public var detail: VersionJSON
        /// Its events.
        public var events: [RegistryEvent]

        /// The version and its events.
        public init(detail: VersionJSON, events: [RegistryEvent]) {
            self.detail = detail
            self.events = events
        }

        public func encode(to encoder: Encoder) throws {
            try detail.encode(to: encoder)
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(events, forKey: .events)
        }

        enum Keys: String, CodingKey { case events }
    }

    /// The versions with their tags and aliases.
    public static func details(_ versions: [ModelVersion], reader: RegistryReader) throws(RegistryError) -> [VersionJSON] {
        let aliases = try reader.aliases()
        return try versions.map { v throws(RegistryError) in
            VersionJSON(version: v, tags: try reader.tags(v.id), aliases: aliases.filter { $0.version == v.id }.map(\.name))
        }
    }

    private static func number(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }

    /// A UTC time stamp of seconds since 1970.
    public static func time(_ seconds: Double) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date(timeIntervalSince1970: seconds))
    }

    /// `registry list` and `registry query`: one row per version.
    public static func table(_ versions: [VersionJSON]) -> String {
        guard !versions.isEmpty else { return "no versions" }
        return TextTable(
            header: ["version", "status", "round", "accuracy", "fed acc", "edges", "strategy", "codec", "aliases", "created", "hash"],
            rows: versions.map { d in
                let v = d.version
                return [
                    String(v.id), v.status.rawValue, v.roundLast.map(String.init) ?? "-", number(v.accuracy), number(v.federatedAccuracy),
                    String(v.participants), v.strategy, v.codec, d.aliases.isEmpty ? "-" : d.aliases.joined(separator: ","),
                    time(v.createdAt), String(v.hash.prefix(12)),
                ]
            }
        ).render()
    }

    /// `registry show`: every field, tags, aliases, and the version's events. Values line up in one column
    /// after the longest label (a long tag key widens it; it is never cut).
    public static func show(_ d: VersionJSON, events: [RegistryEvent]) -> String {
        let v = d.version
        var fields: [(label: String, value: String)] = [
            ("version", "\(v.id)"),
            ("status", "\(v.status.rawValue)" + (v.statusReason.map { " (\($0))" } ?? "")),
            ("aliases", d.aliases.isEmpty ? "-" : d.aliases.joined(separator: ", ")),
            ("hash", v.hash),
            ("signature", "\(v.signature.prefix(32))…"),
            ("parent", v.parent.map(String.init) ?? "-"),
            ("model", "\(v.model) (\(v.parameters) parameters)"),
            ("rounds", "\(v.roundFirst.map(String.init) ?? "-")-\(v.roundLast.map(String.init) ?? "-")"),
            ("participants", "\(v.participants)"),
            ("strategy / codec", "\(v.strategy) / \(v.codec)"),
            ("holdout", "accuracy \(number(v.accuracy)), loss \(number(v.loss))"),
            ("federated", "accuracy \(number(v.federatedAccuracy)), loss \(number(v.federatedLoss))"),
            ("bytes", "up \(v.uploadBytes), down \(v.downloadBytes)"),
            ("created", time(v.createdAt)),
        ]
        for (key, value) in d.tags.sorted(by: { $0.key < $1.key }) { fields.append(("tag.\(key)", value)) }
        let width = max(19, (fields.map(\.label.count).max() ?? 0) + 2)
        var lines = fields.map { $0.label.padding(toLength: width, withPad: " ", startingAt: 0) + $0.value }
        lines.append("")
        lines.append(history(events))
        return lines.joined(separator: "\n")
    }

    /// `registry lineage`: the chain from the root, and the children.
    public static func lineage(_ ancestry: [ModelVersion], children: [ModelVersion]) -> String {
        var lines = ancestry.enumerated().map { i, v in
            String(repeating: "  ", count: i) + (i > 0 ? "└ " : "") + "version \(v.id)  round \(v.roundLast.map(String.init) ?? "-")  "
                + "\(v.status.rawValue)  accuracy \(number(v.accuracy))  \(v.hash.prefix(12))"
        }
        if !children.isEmpty { lines.append("children: " + children.map { "version \($0.id)" }.joined(separator: ", ")) }
        return lines.joined(separator: "\n")
    }

    /// `registry history`: the audit log, with each decision's evidence summarised under it.
    public static func history(_ events: [RegistryEvent]) -> String {
        guard !events.isEmpty else { return "no events" }
        var lines: [String] = []
        for e in events {
            var move = e.version.map { "v\($0)" } ?? "-"
            if let alias = e.alias { move = "\(alias): " + (e.previousVersion.map { "v\($0)" } ?? "-") + " -> " + (e.version.map { "v\($0)" } ?? "-") }
            lines.append("#\(e.id ?? 0)  \(time(e.at))  \(e.kind.rawValue)  \(move)  by \(e.actor): \(e.reason)")
            if let json = e.evidence, let summary = evidenceSummary(json) { lines.append("      evidence: " + summary) }
        }
        return lines.joined(separator: "\n")
    }

    /// One line for an analysis's evidence (or the raw JSON of other evidence).
    public static func evidenceSummary(_ json: String) -> String? {
        guard let e = try? JSONDecoder().decode(AnalysisEvidence.self, from: Data(json.utf8)) else { return json }
        var parts = [
            "\(e.pairs) pairs from \(e.edges) edges",
            String(format: "accuracy %.4f (treatment) vs %.4f (control)", e.treatmentAccuracy, e.controlAccuracy),
            "McNemar b=\(e.onlyControl) c=\(e.onlyTreatment) p=\(String(format: "%.3g", e.mcNemarP))",
        ]
        if let lower = e.lower, let upper = e.upper {
            parts.append(String(format: "difference %+.4f in [%+.4f, %+.4f] at look %d, margin %.3f", e.difference, lower, upper, e.look, e.margin))
        }
        parts.append(String(format: "agreement %.3f, p99 %.2f vs %.2f ms, paired latency difference %+.3f ms", e.agreement, e.treatmentP99Ms, e.controlP99Ms, e.latencyDifferenceMs))
        return parts.joined(separator: "; ")
    }

    /// `registry diff`.
    public static func diff(_ d: VersionDiff) -> String {
        var rows = d.fields.map { [$0.name, $0.first, $0.second] }
        if let distance = d.weightDistance {
            rows.append(["weights: L2 distance", "", String(format: "%.6g", distance)])
            if let r = d.relativeDistance { rows.append(["weights: relative", "", String(format: "%.6g", r)]) }
            if let m = d.largestChange { rows.append(["weights: largest change", "", String(format: "%.6g", m)]) }
            if let c = d.cosine { rows.append(["weights: cosine", "", String(format: "%.6f", c)]) }
        } else {
            rows.append(["weights", "", "architectures differ: not compared"])
        }
        return TextTable(header: ["field", "version \(d.first)", "version \(d.second)"], rows: rows).render()
    }

    /// `registry analyses`.
    public static func analyses(_ list: [Analysis]) -> String {
        guard !list.isEmpty else { return "no analyses" }
        return TextTable(
            header: ["analysis", "kind", "treatment", "control", "state", "looks", "started", "reason"],
            rows: list.map { a in
                [String(a.id ?? 0), a.kind.rawValue, "v\(a.treatment)", "v\(a.control)", a.state.rawValue, String(a.looks), time(a.startedAt), a.reason ?? "-"]
            }
        ).render()
    }
}
