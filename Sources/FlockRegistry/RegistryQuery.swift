import GRDB

/// The small query language of `flock-server registry query`, compiled to one parameterized SQL statement.
///
///     query      := [condition] ["order" "by" field ["asc" | "desc"]] ["limit" integer]
///     condition  := term {"or" term}
///     term       := factor {"and" factor}
///     factor     := "not" factor | "(" condition ")" | comparison
///     comparison := field operator value
///                 | field ["not"] "in" "(" value {"," value} ")"
///                 | field ["not"] "between" value "and" value
///     operator   := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
///     value      := number | "quoted string" | 'quoted string' | bare-word | date
///     field      := version | round | accuracy | loss | federated_accuracy | federated_loss | participants
///                 | parameters | upload_bytes | download_bytes | created | parent | model | strategy | codec
///                 | status | hash | alias | tag.KEY
///
/// For example `accuracy >= 0.9 and round > 10 order by accuracy desc limit 5`, `alias = production`,
/// `tag.team = "vision"`, `round in (3, 5, 8)`, `accuracy between 0.8 and 0.9`.
///
/// - `hash` takes a prefix of 6 or more hex digits with `=`, `!=` and `in`, as every VERSION argument does.
/// - `created` takes the date as `registry list` shows it, in UTC: a day (`2026-12-03`), a minute
///   (`2026-12-03T15:02Z`) or a second (`2026-12-03T15:02:36Z`), quoted or bare, and compares with the whole
///   span the value names: `created = 2026-12-03` is that day, `created > 2026-12-03` is after it. A number is
///   seconds since 1970.
/// - `between` includes both ends; `in` and `between` work on every field but `alias` (which takes `=`, `!=`
///   and `in`).
///
/// Values are always bound as SQL arguments, never spliced into the text. A query that does not parse gets an
/// error that quotes it and points at the offending token; so does one nested more than ``maximumDepth`` deep
/// (parentheses and `not`) or with more than ``maximumComparisons`` comparisons.
public struct RegistryQuery: Sendable, Equatable {
    /// The deepest nesting of parentheses and `not` a query may have.
    public static let maximumDepth = 32
    /// The most comparisons a query may hold (each value of an `in` list on `hash`, `created` or a tag counts
    /// as one; an `in` list on another field counts once).
    public static let maximumComparisons = 500
    /// The most values an `in` list may hold.
    public static let maximumListValues = 1_000

    /// The SQL after `WHERE` (`1` when there is no condition).
    public let condition: String
    /// The arguments the condition binds, in order.
    public let arguments: [DatabaseValue]
    /// The SQL after `ORDER BY`.
    public let order: String
    /// The row limit, if any.
    public let limit: Int?

    /// The numeric fields and their columns.
    static let numericFields: [String: String] = [
        "version": "id", "id": "id", "round": "round_last", "accuracy": "accuracy", "loss": "loss",
        "federated_accuracy": "federated_accuracy", "federated_loss": "federated_loss", "participants": "participants",
        "parameters": "parameters", "upload_bytes": "upload_bytes", "download_bytes": "download_bytes",
        "created": "created_at", "parent": "parent",
    ]
    /// The text fields and their columns.
    static let textFields: [String: String] = [
        "model": "model", "strategy": "strategy", "codec": "codec", "status": "status", "hash": "hash",
    ]

    /// Parses `text`.
    /// - Throws: ``RegistryError/Code/query`` with the column and a caret under the offending token.
    public init(_ text: String) throws(RegistryError) {
        var parser = Parser(text: text, tokens: try Lexer.tokens(of: text))
        (condition, arguments) = try parser.parseQueryCondition()
        (order, limit) = try parser.parseTail()
    }

    /// The versions matching, in the query's order.
    public func run(on reader: RegistryReader) throws(RegistryError) -> [ModelVersion] {
        var sql = "SELECT * FROM version WHERE \(condition) ORDER BY \(order)"
        if let limit { sql += " LIMIT \(limit)" }
        let bound = StatementArguments(arguments)
        return try reader.read { db in try ModelVersion.fetchAll(db, sql: sql, arguments: bound) }
    }

    // MARK: - Lexer

    struct Token: Equatable {
        enum Kind: Equatable { case word, number, string, symbol, end }
        var kind: Kind
        var text: String
        /// 1-based column of its first character.
        var column: Int
    }

    enum Lexer {
        static func tokens(of text: String) throws(RegistryError) -> [Token] {
            let characters = Array(text)
            var tokens: [Token] = []
            var i = 0
            while i < characters.count {
                let c = characters[i]
                let column = i + 1
                if c.isWhitespace {
                    i += 1
                } else if let end = dateEnd(characters, from: i) {
                    // A bare date (2026-12-03, 2026-12-03T15:02:36Z) is one value, not numbers and minus signs.
                    tokens.append(Token(kind: .string, text: String(characters[i..<end]), column: column))
                    i = end
                } else if c.isLetter || c == "_" {
                    var j = i
                    while j < characters.count, characters[j].isLetter || characters[j].isNumber || "_.-".contains(characters[j]) { j += 1 }
                    tokens.append(Token(kind: .word, text: String(characters[i..<j]), column: column))
                    i = j
                } else if c.isNumber || ((c == "-" || c == ".") && i + 1 < characters.count && characters[i + 1].isNumber) {
                    var j = i + 1
                    while j < characters.count, characters[j].isNumber || ".eE".contains(characters[j])
                        || ("+-".contains(characters[j]) && "eE".contains(characters[j - 1])) { j += 1 }
                    // Digits run into letters (a hash prefix such as 9ced44): one word, not a number and a word.
                    var k = j
                    while k < characters.count, characters[k].isLetter || characters[k].isNumber || characters[k] == "_" { k += 1 }
                    let isWord = k > j && c.isNumber
                    tokens.append(Token(kind: isWord ? .word : .number, text: String(characters[i..<(isWord ? k : j)]), column: column))
                    i = isWord ? k : j
                } else if c == "\"" || c == "'" {
                    var j = i + 1
                    while j < characters.count, characters[j] != c { j += 1 }
                    guard j < characters.count else { throw error(text, column: column, "this string is never closed (add a closing \(c))") }
                    tokens.append(Token(kind: .string, text: String(characters[(i + 1)..<j]), column: column))
                    i = j + 1
                } else if "<>!=".contains(c) {
                    var symbol = String(c)
                    if i + 1 < characters.count, characters[i + 1] == "=" || (c == "<" && characters[i + 1] == ">") {
                        symbol.append(characters[i + 1])
                    }
                    guard symbol != "!" else { throw error(text, column: column, "'!' alone is not an operator; use != or not") }
                    tokens.append(Token(kind: .symbol, text: symbol, column: column))
                    i += symbol.count
                } else if c == "(" || c == ")" || c == "," {
                    tokens.append(Token(kind: .symbol, text: String(c), column: column))
                    i += 1
                } else {
                    throw error(text, column: column, "unexpected character '\(c)'")
                }
            }
            tokens.append(Token(kind: .end, text: "", column: characters.count + 1))
            return tokens
        }

        /// The end of a bare date or time stamp starting at `i` (`DDDD-DD-DD`, then optionally `THH:MM`, `:SS`
        /// and `Z`), or nil when none starts there.
        static func dateEnd(_ characters: [Character], from i: Int) -> Int? {
            func matches(_ pattern: String, at start: Int) -> Bool {
                guard start + pattern.count <= characters.count else { return false }
                for (offset, p) in pattern.enumerated() {
                    let c = characters[start + offset]
                    if p == "D" ? !(c.isASCII && c.isNumber) : c != p { return false }
                }
                return true
            }
            guard matches("DDDD-DD-DD", at: i) else { return nil }
            var end = i + 10
            if matches("TDD:DD", at: end) {
                end += 6
                if matches(":DD", at: end) { end += 3 }
                if matches("Z", at: end) { end += 1 }
            }
            // A date glued to more letters or digits is not a date.
            if end < characters.count, characters[end].isLetter || characters[end].isNumber || "_.-:".contains(characters[end]) { return nil }
            return end
        }
    }

    /// A query error quoting the text with a caret under `column`.
    static func error(_ text: String, column: Int, _ message: String) -> RegistryError {
        let caret = String(repeating: " ", count: max(0, column - 1)) + "^"
        return RegistryError(.query, "query: \(message) (column \(column))\n  \(text)\n  \(caret)")
    }

    // MARK: - Dates

    /// The span of seconds since 1970 that a UTC date as `registry list` shows it names: a day (`2026-12-03`),
    /// a minute (`2026-12-03T15:02Z`) or a second (`2026-12-03T15:02:36Z`; `Z` optional, a space for `T`), as
    /// `[start, end)`; nil for text that is no such date.
    public static func dateSpan(_ text: String) -> (start: Double, end: Double)? {
        let characters = Array(text.uppercased().replacingOccurrences(of: " ", with: "T"))
        guard Lexer.dateEnd(characters, from: 0) == characters.count else { return nil }
        func number(_ range: Range<Int>) -> Int { Int(String(characters[range]))! }
        let (year, month, day) = (number(0..<4), number(5..<7), number(8..<10))
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(month), (1...days[month - 1]).contains(day) else { return nil }
        // Days from 1970-01-01 to the date in the proleptic Gregorian calendar (H. Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        var start = Double(era * 146_097 + dayOfEra - 719_468) * 86_400
        var length = 86_400.0
        if characters.count > 10 {
            let (hour, minute) = (number(11..<13), number(14..<16))
            guard hour < 24, minute < 60 else { return nil }
            start += Double(hour * 3_600 + minute * 60)
            length = 60
            if characters.count >= 19, characters[16] == ":" {
                let second = number(17..<19)
                guard second < 60 else { return nil }
                start += Double(second)
                length = 1
            }
        }
        return (start, start + length)
    }

    // MARK: - Parser

    /// What a field is, for how its comparisons compile.
    enum Field {
        case numeric(column: String)
        case text(column: String)
        case hash
        case created
        case alias
        case tag(key: String)
    }

    struct Parser {
        let text: String
        let tokens: [Token]
        var position = 0
        var arguments: [DatabaseValue] = []
        /// Parentheses and `not` open around the current token.
        var depth = 0
        /// Comparisons so far.
        var comparisons = 0

        init(text: String, tokens: [Token]) {
            self.text = text
            self.tokens = tokens
        }

        var current: Token { tokens[position] }
        var next: Token { tokens[min(position + 1, tokens.count - 1)] }

        func isKeyword(_ word: String, _ token: Token? = nil) -> Bool {
            let t = token ?? current
            return t.kind == .word && t.text.lowercased() == word
        }

        func isSymbol(_ symbol: String) -> Bool { current.kind == .symbol && current.text == symbol }

        func fail(_ message: String, at token: Token? = nil) -> RegistryError {
            let t = token ?? current
            return RegistryQuery.error(text, column: t.column, message)
        }

        func describe(_ token: Token) -> String {
            switch token.kind {
            case .end: return "the end of the query"
            case .string: return "\"\(token.text)\""
            default: return "'\(token.text)'"
            }
        }

        mutating func parseQueryCondition() throws(RegistryError) -> (String, [DatabaseValue]) {
            if current.kind == .end || isKeyword("order") || isKeyword("limit") { return ("1", []) }
            let sql = try parseCondition()
            return (sql, arguments)
        }

        mutating func parseTail() throws(RegistryError) -> (String, Int?) {
            var order = "id DESC"
            var limit: Int?
            if isKeyword("order") {
                position += 1
                guard isKeyword("by") else { throw fail("expected 'by' after 'order', got \(describe(current))") }
                position += 1
                let field = current
                guard field.kind == .word, let column = RegistryQuery.numericFields[field.text.lowercased()] ?? RegistryQuery.textFields[field.text.lowercased()] else {
                    throw fail("cannot order by \(describe(field)); use a field such as accuracy, round, created or version")
                }
                position += 1
                var direction = "ASC"
                if isKeyword("asc") { position += 1 } else if isKeyword("desc") {
                    direction = "DESC"
                    position += 1
                }
                // Versions without the value sort last either way; ties keep the newest first.
                order = "\(column) IS NULL, \(column) \(direction), id DESC"
            }
            if isKeyword("limit") {
                position += 1
                guard current.kind == .number, let n = Int(current.text), n > 0 else {
                    throw fail("expected a positive whole number after 'limit', got \(describe(current))")
                }
                limit = n
                position += 1
            }
            guard current.kind == .end else {
                throw fail("unexpected \(describe(current)); a condition can be followed only by 'order by' and 'limit'")
            }
            return (order, limit)
        }

        // A chain of `or` (or `and`) compiles flat, `a OR b OR c`, so SQLite's parser nests no deeper than the query.
        mutating func parseCondition() throws(RegistryError) -> String {
            var terms = [try parseTerm()]
            while isKeyword("or") {
                position += 1
                terms.append(try parseTerm())
            }
            return terms.joined(separator: " OR ")
        }

        mutating func parseTerm() throws(RegistryError) -> String {
            var factors = [try parseFactor()]
            while isKeyword("and") {
                position += 1
                factors.append(try parseFactor())
            }
            return factors.joined(separator: " AND ")
        }

        /// Counts one more level of nesting at `token`, refusing more than ``RegistryQuery/maximumDepth``.
        mutating func enter(_ token: Token) throws(RegistryError) {
            depth += 1
            guard depth <= RegistryQuery.maximumDepth else {
                throw fail("nested more than \(RegistryQuery.maximumDepth) deep (parentheses and 'not'); write it flatter, with 'in (…)' or 'between'", at: token)
            }
        }

        mutating func parseFactor() throws(RegistryError) -> String {
            if isKeyword("not") {
                try enter(current)
                position += 1
                let inner = try parseFactor()
                depth -= 1
                return "NOT (\(inner))"
            }
            if isSymbol("(") {
                let open = current
                try enter(open)
                position += 1
                let inner = try parseCondition()
                guard isSymbol(")") else {
                    throw fail("expected ')' to close the '(' at column \(open.column), got \(describe(current))")
                }
                position += 1
                depth -= 1
                return "(\(inner))"
            }
            return try parseComparison()
        }

        /// The field `token` names.
        func resolveField(_ token: Token) throws(RegistryError) -> Field {
            let name = token.text.lowercased()
            switch name {
            case "hash": return .hash
            case "created": return .created
            case "alias": return .alias
            default: break
            }
            if let column = RegistryQuery.numericFields[name] { return .numeric(column: column) }
            if let column = RegistryQuery.textFields[name] { return .text(column: column) }
            if name.hasPrefix("tag.") {
                let key = String(token.text.dropFirst(4))
                guard !key.isEmpty else { throw fail("name the tag: tag.NAME", at: token) }
                return .tag(key: key)
            }
            throw fail("unknown field '\(token.text)'; fields are version, round, accuracy, loss, federated_accuracy, federated_loss, "
                + "participants, parameters, upload_bytes, download_bytes, created, parent, model, strategy, codec, status, hash, alias, tag.NAME", at: token)
        }

        /// Reads one value after `context`.
        mutating func value(after context: String) throws(RegistryError) -> Token {
            let token = current
            guard [.number, .string, .word].contains(token.kind),
                  token.kind == .string || !["and", "or", "order", "limit"].contains(token.text.lowercased()) else {
                throw fail("expected a value after '\(context)', got \(describe(token))")
            }
            position += 1
            return token
        }

        /// Counts `count` more comparisons at `token`, refusing more than ``RegistryQuery/maximumComparisons``.
        mutating func count(_ count: Int, at token: Token) throws(RegistryError) {
            comparisons += count
            guard comparisons <= RegistryQuery.maximumComparisons else {
                throw fail("more than \(RegistryQuery.maximumComparisons) comparisons; narrow the query, or use 'in (…)' or 'between'", at: token)
            }
        }

        mutating func parseComparison() throws(RegistryError) -> String {
            let fieldToken = current
            guard fieldToken.kind == .word else {
                throw fail("expected a field (accuracy, round, alias, tag.NAME, …), got \(describe(fieldToken))")
            }
            let field = try resolveField(fieldToken)
            position += 1
            var negated = false
            if isKeyword("not"), isKeyword("in", next) || isKeyword("between", next) {
                negated = true
                position += 1
            }
            let sql: String
            if isKeyword("in") {
                sql = try parseList(field, fieldToken)
            } else if isKeyword("between") {
                let keyword = current
                if case .alias = field { throw fail("alias compares only with =, != or in", at: keyword) }
                position += 1
                let low = try value(after: "\(fieldToken.text) between")
                guard isKeyword("and") else { throw fail("expected 'and' after '\(fieldToken.text) between \(low.text)', got \(describe(current))") }
                position += 1
                let high = try value(after: "\(fieldToken.text) between \(low.text) and")
                try count(2, at: fieldToken)
                let from = try compare(field, ">=", low, fieldToken)
                let to = try compare(field, "<=", high, fieldToken)
                sql = "(\(from) AND \(to))"
            } else {
                let opToken = current
                guard opToken.kind == .symbol, let op = ["=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="][opToken.text] else {
                    throw fail("expected a comparison operator (=, !=, <, <=, >, >=, in, between) after '\(fieldToken.text)', got \(describe(opToken))")
                }
                position += 1
                let valueToken = try value(after: "\(fieldToken.text) \(opToken.text)")
                if case .alias = field, op != "=", op != "!=" { throw fail("alias compares only with =, != or in", at: opToken) }
                try count(1, at: fieldToken)
                sql = try compare(field, op, valueToken, fieldToken)
            }
            return negated ? "NOT (\(sql))" : sql
        }

        /// `field in (v1, v2, …)`: one SQL `IN` for plain columns and aliases, else each value's `=` joined by `OR`.
        mutating func parseList(_ field: Field, _ fieldToken: Token) throws(RegistryError) -> String {
            position += 1
            guard isSymbol("(") else { throw fail("expected '(' after 'in', got \(describe(current))") }
            let open = current
            position += 1
            var values: [Token] = []
            while true {
                values.append(try value(after: values.isEmpty ? "in (" : ","))
                guard values.count <= RegistryQuery.maximumListValues else {
                    throw fail("more than \(RegistryQuery.maximumListValues) values in one 'in' list", at: values.last)
                }
                if isSymbol(",") {
                    position += 1
                    continue
                }
                guard isSymbol(")") else {
                    throw fail("expected ',' or ')' to close the '(' at column \(open.column), got \(describe(current))")
                }
                position += 1
                break
            }
            switch field {
            case .numeric(let column):
                try count(1, at: fieldToken)
                for v in values { arguments.append(try number(v, field: fieldToken)) }
                return "\(column) IN (\(Array(repeating: "?", count: values.count).joined(separator: ", ")))"
            case .text(let column):
                try count(1, at: fieldToken)
                for v in values { arguments.append(v.text.databaseValue) }
                return "\(column) IN (\(Array(repeating: "?", count: values.count).joined(separator: ", ")))"
            case .alias:
                try count(1, at: fieldToken)
                for v in values { arguments.append(v.text.databaseValue) }
                return "id IN (SELECT version FROM alias WHERE name IN (\(Array(repeating: "?", count: values.count).joined(separator: ", "))))"
            case .hash, .created, .tag:
                try count(values.count, at: fieldToken)
                var parts: [String] = []
                for v in values { parts.append(try compare(field, "=", v, fieldToken)) }
                return "(" + parts.joined(separator: " OR ") + ")"
            }
        }

        func number(_ token: Token, field: Token) throws(RegistryError) -> DatabaseValue {
            guard token.kind == .number, let number = Double(token.text), number.isFinite else {
                throw fail("\(field.text) is a number; \(describe(token)) is not", at: token)
            }
            return number.databaseValue
        }

        /// One comparison `field op value` in SQL, its arguments appended.
        mutating func compare(_ field: Field, _ op: String, _ token: Token, _ fieldToken: Token) throws(RegistryError) -> String {
            switch field {
            case .numeric(let column):
                arguments.append(try number(token, field: fieldToken))
                return "\(column) \(op) ?"
            case .text(let column):
                arguments.append(token.text.databaseValue)
                return "\(column) \(op) ?"
            case .hash:
                let value = token.text.lowercased()
                guard value.allSatisfy(\.isHexDigit), value.count >= 6, value.count <= 64 else {
                    throw fail("hash is hex: give 6 to 64 hex digits (a prefix matches every version whose hash starts so)", at: token)
                }
                guard value.count < 64, op == "=" || op == "!=" else {
                    arguments.append(value.databaseValue)
                    return "hash \(op) ?"
                }
                arguments.append((value + "%").databaseValue)
                return "hash \(op == "=" ? "LIKE" : "NOT LIKE") ?"
            case .created:
                if token.kind == .number {
                    arguments.append(try number(token, field: fieldToken))
                    return "created_at \(op) ?"
                }
                guard let span = RegistryQuery.dateSpan(token.text) else {
                    throw fail("created is a UTC date as `registry list` shows it (2026-12-03, 2026-12-03T15:02Z or 2026-12-03T15:02:36Z) "
                        + "or seconds since 1970; \(describe(token)) is not", at: token)
                }
                switch op {
                case "=", "!=":
                    arguments += [span.start.databaseValue, span.end.databaseValue]
                    return (op == "=" ? "" : "NOT ") + "(created_at >= ? AND created_at < ?)"
                case "<":
                    arguments.append(span.start.databaseValue)
                    return "created_at < ?"
                case "<=":
                    arguments.append(span.end.databaseValue)
                    return "created_at < ?"
                case ">":
                    arguments.append(span.end.databaseValue)
                    return "created_at >= ?"
                default:
                    arguments.append(span.start.databaseValue)
                    return "created_at >= ?"
                }
            case .alias:
                arguments.append(token.text.databaseValue)
                return "id \(op == "=" ? "IN" : "NOT IN") (SELECT version FROM alias WHERE name = ?)"
            case .tag(let key):
                arguments.append(key.databaseValue)
                // A number compares numerically with tags that hold numbers.
                if token.kind == .number, let number = Double(token.text), number.isFinite {
                    arguments.append(number.databaseValue)
                    return "EXISTS (SELECT 1 FROM tag WHERE tag.version = version.id AND tag.key = ? AND CAST(tag.value AS REAL) \(op) ?)"
                }
                arguments.append(token.text.databaseValue)
                return "EXISTS (SELECT 1 FROM tag WHERE tag.version = version.id AND tag.key = ? AND tag.value \(op) ?)"
            }
        }
    }
}

extension RegistryReader {
    /// The versions a query (see ``RegistryQuery``) selects.
    /// - Throws: ``RegistryError/Code/query`` pointing at the offending token.
    public func query(_ text: String) throws(RegistryError) -> [ModelVersion] {
        try RegistryQuery(text).run(on: self)
    }
}
