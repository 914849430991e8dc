/// How a long-running command writes its log: one human line per event, or one JSON object per line.
public enum LogFormat: String, CaseIterable, Sendable {
    /// One line per event, as a person reads it: the message, prefixed by its level from `warning` up
    /// (`warning: …`, `error: …`) and below `info` (`debug: …`).
    case text
    /// One JSON object per line: `time` (ISO 8601, UTC), `level`, `label`, `message` and `metadata`.
    case json
}
