import GRDB

/// The small query language of `flock-server registry query`, compiled to one parameterized SQL statement.
///
///     query      := [condition] ["order" "by" field ["asc" | "desc"]] ["limit" integer]
///     condition  := term {"or" term}
///     term       := factor {"and" factor}
///     factor     := "not" factor | "(" condition ")" | field operator value
///     operator   := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
///     value      := number | "quoted string" | 'quoted string' | bare-word
///     field      := version | round | accuracy | loss | federated_accuracy | federated_loss | participants
///                 | parameters | upload_bytes | download_bytes | created | parent | model | strategy | codec
///                 | status | hash | alias | tag.KEY
///
/// For example `accuracy >= 0.9 and round > 10 order by accuracy desc limit 5`, `alias = production`,
/// `tag.team = "vision"`. Values are always bound as SQL arguments, never spliced into the text. A query that
/// does not parse gets an error that quotes it and points at the offending token.
public struct RegistryQuery: Sendable, Equatable {
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
                } else if c.isLetter || c == "_" {
                    var j = i
                    while j < characters.count, characters[j].isLetter || characters[j].isNumber || "_.-".contains(characters[j]) { j += 1 }
                    tokens.append(Token(kind: .word, text: String(characters[i..<j]), column: column))
                    i = j
                } else if c.isNumber || ((c == "-" || c == ".") && i + 1 < characters.count && characters[i + 1].isNumber) {
                    var j = i + 1
                    while j < characters.count, characters[j].isNumber || ".eE".contains(characters[j])
                        || ("+-".contains(characters[j]) && "eE".contains(characters[j - 1])) { j += 1 }
                    tokens.append(Token(kind: .number, text: String(characters[i..<j]), column: column))
                    i = j
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
                } else if c == "(" || c == ")" {
                    tokens.append(Token(kind: .symbol, text: String(c), column: column))
                    i += 1
                } else {
                    throw error(text, column: column, "unexpected character '\(c)'")
                }
            }
            tokens.append(Token(kind: .end, text: "", column: characters.count + 1))
            return tokens
        }
    }

    /// A query error quoting the text with a caret under `column`.
    static func error(_ text: String, column: Int, _ message: String) -> RegistryError {
        let caret = String(repeating: " ", count: max(0, column - 1)) + "^"
        return RegistryError(.query, "query: \(message) (column \(column))\n  \(text)\n  \(caret)")
    }

    // MARK: - Parser

    struct Parser {
        let text: String
        let tokens: [Token]
        var position = 0
        var arguments: [DatabaseValue] = []

        init(text: String, tokens: [Token]) {
            self.text = text
            self.tokens = tokens
        }

        var current: Token { tokens[position] }

        func isKeyword(_ word: String, _ token: Token? = nil) -> Bool {
            let t = token ?? current
            return t.kind == .word && t.text.lowercased() == word
        }

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

        mutating func parseCondition() throws(RegistryError) -> String {
            var sql = try parseTerm()
            while isKeyword("or") {
                position += 1
                sql = "(\(sql) OR \(try parseTerm()))"
            }
            return sql
        }

        mutating func parseTerm() throws(RegistryError) -> String {
            var sql = try parseFactor()
            while isKeyword("and") {
                position += 1
                sql = "(\(sql) AND \(try parseFactor()))"
            }
            return sql
        }

        mutating func parseFactor() throws(RegistryError) -> String {
            if isKeyword("not") {
                position += 1
                return "NOT (\(try parseFactor()))"
            }
            if current.kind == .symbol, current.text == "(" {
                let open = current
                position += 1
                let inner = try parseCondition()
                guard current.kind == .symbol, current.text == ")" else {
                    throw fail("expected ')' to close the '(' at column \(open.column), got \(describe(current))")
                }
                position += 1
                return "(\(inner))"
            }
            return try parseComparison()
        }

        mutating func parseComparison() throws(RegistryError) -> String {
            let field = current
            guard field.kind == .word else {
                throw fail("expected a field (accuracy, round, alias, tag.NAME, …), got \(describe(field))")
            }
            let name = field.text.lowercased()
            position += 1
            let opToken = current
            guard opToken.kind == .symbol, let op = ["=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="][opToken.text] else {
                throw fail("expected a comparison operator (=, !=, <, <=, >, >=) after '\(field.text)', got \(describe(opToken))")
            }
            position += 1
            let valueToken = current
            guard [.number, .string, .word].contains(valueToken.kind), !["and", "or", "order", "limit"].contains(valueToken.text.lowercased()) || valueToken.kind == .string else {
                throw fail("expected a value after '\(field.text) \(opToken.text)', got \(describe(valueToken))")
            }
            position += 1
            if let column = RegistryQuery.numericFields[name] {
                guard valueToken.kind == .number, let number = Double(valueToken.text) else {
                    throw fail("\(field.text) is a number; \(describe(valueToken)) is not", at: valueToken)
                }
                arguments.append(number.databaseValue)
                return "\(column) \(op) ?"
            }
            if let column = RegistryQuery.textFields[name] {
                arguments.append(valueToken.text.databaseValue)
                return "\(column) \(op) ?"
            }
            if name == "alias" {
                guard op == "=" || op == "!=" else { throw fail("alias compares only with = or !=", at: opToken) }
                arguments.append(valueToken.text.databaseValue)
                return "id \(op == "=" ? "IN" : "NOT IN") (SELECT version FROM alias WHERE name = ?)"
            }
            if name.hasPrefix("tag.") {
                let key = String(field.text.dropFirst(4))
                guard !key.isEmpty else { throw fail("name the tag: tag.NAME", at: field) }
                arguments.append(key.databaseValue)
                // A number compares numerically with tags that hold numbers.
                if valueToken.kind == .number, let number = Double(valueToken.text) {
                    arguments.append(number.databaseValue)
                    return "EXISTS (SELECT 1 FROM tag WHERE tag.version = version.id AND tag.key = ? AND CAST(tag.value AS REAL) \(op) ?)"
                }
                arguments.append(valueToken.text.databaseValue)
                return "EXISTS (SELECT 1 FROM tag WHERE tag.version = version.id AND tag.key = ? AND tag.value \(op) ?)"
            }
            throw fail("unknown field '\(field.text)'; fields are version, round, accuracy, loss, federated_accuracy, federated_loss, "
                + "participants, parameters, upload_bytes, download_bytes, created, parent, model, strategy, codec, status, hash, alias, tag.NAME", at: field)
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
