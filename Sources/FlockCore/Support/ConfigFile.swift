/// A configuration file in the TOML subset that Flock's example configs use: `# comments`, `[section]`
/// headers, and `key = value` lines whose value is a basic string (`"…"` with `\"`, `\\`, `\n`, `\t`
/// escapes), an integer, a float, or `true`/`false`. Keys are looked up as `section.key`.
///
/// Strict on purpose: a line that is not one of these forms, a key given twice, or (through
/// ``unusedKeys(known:)``) a key nobody reads is an error with its line number, so a typo in a deployed
/// config fails loudly instead of silently falling back to a default.
public struct ConfigFile: Sendable {
    /// A parsed value.
    public enum Value: Sendable, Equatable {
        case string(String)
        case integer(Int)
        case float(Double)
        case boolean(Bool)
    }

    /// Values by `section.key` (or `key` before any section), with the line they came from.
    public private(set) var entries: [String: (value: Value, line: Int)] = [:]
    /// Where the text came from, for messages.
    public let source: String

    /// Parses `text`.
    /// - Throws: ``CoreError/Code/invalidData`` naming the source and line.
    public init(text: String, source: String) throws(CoreError) {
        self.source = source
        var section = ""
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let line = Self.strippingComment(rawLine).trimmingSpaces()
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else { throw CoreError(.invalidData, "\(source):\(number): malformed section header") }
                let name = String(line.dropFirst().dropLast()).trimmingSpaces()
                guard Self.isBareKey(name) else { throw CoreError(.invalidData, "\(source):\(number): malformed section name '\(name)'") }
                section = name
                continue
            }
            guard let equals = line.firstIndex(of: "=") else {
                throw CoreError(.invalidData, "\(source):\(number): expected 'key = value'")
            }
            let key = String(line[..<equals]).trimmingSpaces()
            let valueText = String(line[line.index(after: equals)...]).trimmingSpaces()
            guard Self.isBareKey(key) else { throw CoreError(.invalidData, "\(source):\(number): malformed key '\(key)'") }
            let fullKey = section.isEmpty ? key : section + "." + key
            guard entries[fullKey] == nil else { throw CoreError(.invalidData, "\(source):\(number): '\(fullKey)' is set twice") }
            guard let value = Self.parseValue(valueText) else {
                throw CoreError(.invalidData, "\(source):\(number): cannot read the value of '\(fullKey)' (a \"string\", number, true or false)")
            }
            entries[fullKey] = (value, number)
        }
    }

    /// Reads and parses the file at `path`.
    /// - Throws: ``CoreError/Code/fileNotFound`` or ``CoreError/Code/invalidData``.
    public init(path: String) throws(CoreError) {
        let bytes = try FileIO.read(path)
        try self.init(text: String(decoding: bytes, as: UTF8.self), source: path)
    }

    /// Keys present in the file but not in `known`, as `file:line: unknown key 'k'` messages.
    public func unusedKeys(known: Set<String>) -> [String] {
        entries.filter { !known.contains($0.key) }.sorted { $0.value.line < $1.value.line }
            .map { "\(source):\($0.value.line): unknown key '\($0.key)'" }
    }

    /// The string at `key`, nil when absent.
    /// - Throws: ``CoreError/Code/invalidData`` when it is not a string.
    public func string(_ key: String) throws(CoreError) -> String? {
        guard let entry = entries[key] else { return nil }
        guard case .string(let s) = entry.value else { throw mistyped(key, entry.line, "a \"string\"") }
        return s
    }

    /// The integer at `key`, nil when absent.
    /// - Throws: ``CoreError/Code/invalidData`` when it is not an integer.
    public func integer(_ key: String) throws(CoreError) -> Int? {
        guard let entry = entries[key] else { return nil }
        guard case .integer(let i) = entry.value else { throw mistyped(key, entry.line, "an integer") }
        return i
    }

    /// The number at `key` (integer or float), nil when absent.
    /// - Throws: ``CoreError/Code/invalidData`` when it is not a number.
    public func number(_ key: String) throws(CoreError) -> Double? {
        guard let entry = entries[key] else { return nil }
        switch entry.value {
        case .integer(let i): return Double(i)
        case .float(let d): return d
        default: throw mistyped(key, entry.line, "a number")
        }
    }

    /// The boolean at `key`, nil when absent.
    /// - Throws: ``CoreError/Code/invalidData`` when it is not `true` or `false`.
    public func boolean(_ key: String) throws(CoreError) -> Bool? {
        guard let entry = entries[key] else { return nil }
        guard case .boolean(let b) = entry.value else { throw mistyped(key, entry.line, "true or false") }
        return b
    }

    private func mistyped(_ key: String, _ line: Int, _ expected: String) -> CoreError {
        CoreError(.invalidData, "\(source):\(line): '\(key)' must be \(expected)")
    }

    private static func isBareKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.allSatisfy { (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 95 || $0 == 45 }
    }

    /// The line without a `#` comment (a `#` inside a string is kept).
    private static func strippingComment(_ line: Substring) -> Substring {
        var inString = false
        var escaped = false
        for index in line.indices {
            let c = line[index]
            if inString {
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
            } else if c == "\"" {
                inString = true
            } else if c == "#" {
                return line[..<index]
            }
        }
        return line
    }

    private static func parseValue(_ text: String) -> Value? {
        if text == "true" { return .boolean(true) }
        if text == "false" { return .boolean(false) }
        if text.hasPrefix("\"") {
            guard text.count >= 2, text.hasSuffix("\"") else { return nil }
            var out = ""
            var escaped = false
            for c in text.dropFirst().dropLast() {
                if escaped {
                    switch c {
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "\"": out.append("\"")
                    case "\\": out.append("\\")
                    default: return nil
                    }
                    escaped = false
                } else if c == "\\" {
                    escaped = true
                } else if c == "\"" {
                    return nil
                } else {
                    out.append(c)
                }
            }
            return escaped ? nil : .string(out)
        }
        let digits = text.replacingUnderscores()
        if let i = Int(digits) { return .integer(i) }
        if let d = Double(digits), d.isFinite, digits.first.map({ $0.isNumber || $0 == "-" || $0 == "+" || $0 == "." }) == true {
            return .float(d)
        }
        return nil
    }
}

extension StringProtocol {
    fileprivate func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }

    fileprivate func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
