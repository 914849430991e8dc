#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Dataset {
    /// Loads a header-less CSV file whose rows are `label,feature,feature,...`.
    ///
    /// The label is a non-negative integer (`3`, `+3` and `3.0` are all accepted); features are decimal numbers
    /// (`12`, `-0.5`, `.5`, `1.25e-3`, ...) that must be finite as Float32. Lines end in `\n` or `\r\n`; the
    /// last line may lack its newline and blank lines at the end of the file are ignored. Spaces and tabs around
    /// a value are ignored. Every row must have as many values as the first one.
    ///
    /// Parsing works on the raw bytes; the 4,000 x 785 MNIST subset loads in a few milliseconds in release builds.
    ///
    /// - Parameter path: The file to read.
    /// - Returns: The rows, with `source` set to `path`.
    /// - Throws: ``CoreError/Code/fileNotFound`` when the file does not exist, ``CoreError/Code/io`` when it
    ///   cannot be read, and ``CoreError/Code/invalidData`` for an empty file, a ragged row, a token that is not
    ///   a number, a non-finite feature or a label that is not a non-negative integer. Messages have the form
    ///   `PATH:LINE: ...` with 1-based line numbers.
    /// - Complexity: O(n) in the file size.
    public static func loadCSV(path: String) throws(CoreError) -> Dataset {
        let bytes = try FileIO.read(path)
        let result = bytes.withUnsafeBufferPointer { CSVParser.parse($0) }
        switch result {
        case .success(let table):
            return Dataset(
                features: table.features,
                labels: table.labels,
                featureCount: table.width - 1,
                source: path
            )
        case .failure(let failure):
            throw CoreError(.invalidData, failure.message(path: path))
        }
    }

    /// Writes the data set as header-less CSV rows `label,feature,feature,...`, atomically.
    ///
    /// Labels are written as integers; a feature is written as an integer when it is integral (and below 10^15
    /// in magnitude), otherwise as the shortest decimal that reads back as the same Float32. The file is written
    /// to a temporary name in the same directory, flushed to disk and renamed over `path`, so readers see either
    /// the old file or the complete new one. ``loadCSV(path:)`` reads the result back unchanged (except that an
    /// empty data set gives an empty file, which the loader refuses).
    ///
    /// - Parameter path: The file to create or replace.
    /// - Throws: ``CoreError/Code/invalidData`` when a feature is NaN or infinite; ``CoreError/Code/io`` when the
    ///   file cannot be written.
    /// - Complexity: O(`count` x `featureCount`).
    public func writeCSV(path: String) throws(CoreError) {
        var out = [UInt8]()
        out.reserveCapacity(count * (featureCount * 4 + 4))
        for row in 0..<count {
            CSVFormatter.appendInteger(Int64(labels[row]), to: &out)
            let base = row * featureCount
            for column in 0..<featureCount {
                let value = features[base + column]
                guard value.isFinite else {
                    throw CoreError(
                        .invalidData,
                        "\(path): cannot write row \(row + 1), feature \(column + 1): the value is not finite"
                    )
                }
                out.append(UInt8(ascii: ","))
                CSVFormatter.appendFeature(value, to: &out)
            }
            out.append(UInt8(ascii: "\n"))
        }
        try FileIO.writeAtomically(out, to: path)
    }
}

// MARK: - Parsing

/// Why a CSV file was refused; turned into a one-line message once the path is known.
private enum CSVFailure: Error {
    case empty
    case blankLine(line: Int, expected: Int)
    case tooFewValues(line: Int, found: Int)
    case ragged(line: Int, expected: Int, found: Int)
    case notANumber(line: Int, column: Int, token: String)
    case notFinite(line: Int, column: Int, token: String)
    case negativeLabel(line: Int, token: String)
    case fractionalLabel(line: Int, token: String)
    case labelTooLarge(line: Int, token: String)

    func message(path: String) -> String {
        let labelRule = "labels must be non-negative integers (0, 1, 2, ...)"
        switch self {
        case .empty:
            return "\(path): file is empty; expected rows of 'label,feature,feature,...'"
        case .blankLine(let line, let expected) where expected < 0:
            return "\(path):\(line): empty line; expected rows of 'label,feature,feature,...'"
        case .blankLine(let line, let expected):
            return "\(path):\(line): empty line; expected \(expected) values"
        case .tooFewValues(let line, let found):
            return "\(path):\(line): found \(found) value; expected a label followed by at least one feature"
        case .ragged(let line, let expected, let found):
            return "\(path):\(line): expected \(expected) values, found \(found)"
        case .notANumber(let line, let column, let token):
            if token.isEmpty { return "\(path):\(line): column \(column): empty value where a number was expected" }
            return "\(path):\(line): column \(column): '\(token)' is not a number"
        case .notFinite(let line, let column, let token):
            return "\(path):\(line): column \(column): '\(token)' is not finite; features must be finite Float32 values"
        case .negativeLabel(let line, let token):
            return "\(path):\(line): column 1: label '\(token)' is negative; \(labelRule)"
        case .fractionalLabel(let line, let token):
            return "\(path):\(line): column 1: label '\(token)' is not an integer; \(labelRule)"
        case .labelTooLarge(let line, let token):
            return "\(path):\(line): column 1: label '\(token)' is too large; the largest allowed is \(Int32.max)"
        }
    }
}

/// A byte-level parser for `label,feature,...` rows.
private enum CSVParser {
    struct Table {
        var features: [Float]
        var labels: [Int32]
        var width: Int
    }

    static let comma = UInt8(ascii: ",")
    static let newline = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let carriageReturn = UInt8(ascii: "\r")

    @inline(__always) static func isBlank(_ byte: UInt8) -> Bool {
        byte == space || byte == tab || byte == carriageReturn
    }

    static func parse(_ buffer: UnsafeBufferPointer<UInt8>) -> Result<Table, CSVFailure> {
        guard let bytes = buffer.baseAddress, buffer.count > 0 else { return .failure(.empty) }
        var position = 0
        if buffer.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { position = 3 }  // UTF-8 BOM

        // Ignore trailing whitespace and blank lines.
        var end = buffer.count
        while end > position, isBlank(bytes[end - 1]) || bytes[end - 1] == newline { end -= 1 }
        guard end > position else { return .failure(.empty) }

        // The first line sets the width. Rows are bounded by the line count and by the bytes a valid row needs
        // (a value and a separator per column: 2 x width), so the features fit in one allocation that a hostile
        // file (one very wide line, then many short ones) cannot inflate.
        var width = 1
        var lineCount = 1
        var i = position
        while i < end, bytes[i] != newline {
            if bytes[i] == comma { width += 1 }
            i += 1
        }
        for byte in UnsafeBufferPointer(start: bytes + i, count: end - i) {
            lineCount &+= byte == newline ? 1 : 0
        }
        if width < 2 {
            var first = position
            let (start, stop) = scanField(bytes, &first, end)
            return .failure(start == stop ? .blankLine(line: 1, expected: -1) : .tooFewValues(line: 1, found: 1))
        }

        var labels = [Int32]()
        labels.reserveCapacity(lineCount)
        var failure: CSVFailure?
        let rowBound = min(lineCount, (end - position + 1) / (2 * width) + 1)
        let features = [Float](unsafeUninitializedCapacity: rowBound * (width - 1)) { output, initialized in
            var written = 0
            var line = 1
            defer { initialized = written }
            while position < end {
                // Column 1: the label.
                let (start, stop) = scanField(bytes, &position, end)
                if start == stop, position == end || bytes[position] == newline {
                    failure = .blankLine(line: line, expected: line == 1 ? -1 : width)
                    return
                }
                switch parseLabel(bytes, start, stop) {
                case .success(let label):
                    labels.append(label)
                case .failure(let reason):
                    failure = reason.at(line: line, token: token(bytes, start, stop))
                    return
                }
                // Columns 2...: the features.
                var column = 1
                while position < end, bytes[position] == comma {
                    position += 1
                    column += 1
                    if column > width {
                        var found = column
                        while position < end, bytes[position] != newline {
                            if bytes[position] == comma { found += 1 }
                            position += 1
                        }
                        failure = .ragged(line: line, expected: width, found: found)
                        return
                    }
                    if let value = plainInteger(bytes, &position, end) {
                        output[written] = value
                        written += 1
                        continue
                    }
                    let (start, stop) = scanField(bytes, &position, end)
                    guard let value = parseFloat(bytes, start, stop) else {
                        failure = .notANumber(line: line, column: column, token: token(bytes, start, stop))
                        return
                    }
                    guard value.isFinite else {
                        failure = .notFinite(line: line, column: column, token: token(bytes, start, stop))
                        return
                    }
                    output[written] = value
                    written += 1
                }
                guard column == width else {
                    failure = .ragged(line: line, expected: width, found: column)
                    return
                }
                position += 1  // the newline (or one past `end`, which ends the loop)
                line += 1
            }
        }
        if let failure { return .failure(failure) }
        return .success(Table(features: features, labels: labels, width: width))
    }

    /// Scans the field at `position` up to the next comma or newline (where `position` is left) and returns its
    /// bounds without surrounding spaces, tabs and carriage returns.
    @inline(__always)
    static func scanField(_ bytes: UnsafePointer<UInt8>, _ position: inout Int, _ end: Int) -> (Int, Int) {
        var start = position
        while start < end, bytes[start] == space || bytes[start] == tab { start += 1 }
        var stop = start
        while stop < end, bytes[stop] != comma, bytes[stop] != newline { stop += 1 }
        position = stop
        while stop > start, isBlank(bytes[stop - 1]) { stop -= 1 }
        return (start, stop)
    }

    /// The fast path for the common case: up to seven digits ending at a comma, a newline or the end. Advances
    /// `position` to that delimiter and returns the value, or returns nil and leaves `position` alone.
    @inline(__always)
    static func plainInteger(_ bytes: UnsafePointer<UInt8>, _ position: inout Int, _ end: Int) -> Float? {
        var p = position
        guard p < end else { return nil }
        var value = UInt32(bytes[p]) &- 48
        guard value <= 9 else { return nil }
        p += 1
        while p < end {
            let byte = bytes[p]
            let digit = UInt32(byte) &- 48
            if digit > 9 {
                guard byte == comma || byte == newline else { return nil }
                break
            }
            value = value * 10 + digit
            guard value < 10_000_000 else { return nil }
            p += 1
        }
        position = p
        return Float(value)
    }

    /// Why a label token was refused, before the line is known.
    enum LabelFailure: Error {
        case notANumber, negative, fractional, tooLarge

        func at(line: Int, token: String) -> CSVFailure {
            switch self {
            case .notANumber: return .notANumber(line: line, column: 1, token: token)
            case .negative: return .negativeLabel(line: line, token: token)
            case .fractional: return .fractionalLabel(line: line, token: token)
            case .tooLarge: return .labelTooLarge(line: line, token: token)
            }
        }
    }

    @inline(__always)
    static func parseLabel(_ bytes: UnsafePointer<UInt8>, _ start: Int, _ stop: Int) -> Result<Int32, LabelFailure> {
        // Fast path: plain digits.
        var i = start
        if i < stop, bytes[i] == UInt8(ascii: "+") { i += 1 }
        if i < stop {
            var value = 0
            var j = i
            while j < stop {
                let digit = Int(bytes[j]) &- 48
                guard digit >= 0, digit <= 9 else { break }
                value = value * 10 + digit
                if value > Int(Int32.max) { break }
                j += 1
            }
            if j == stop { return .success(Int32(value)) }
        }
        // General numbers such as "3.0" or "3e0" (rare, so the standard library's Double parser is fine here),
        // and the reasons for refusing the rest.
        guard parseFloat(bytes, start, stop) != nil else { return .failure(.notANumber) }
        let text = String(decoding: UnsafeBufferPointer(start: bytes + start, count: stop - start), as: UTF8.self)
        guard let value = Double(text), !value.isNaN else { return .failure(.notANumber) }
        if value < 0 { return .failure(.negative) }
        guard value.isFinite, value.rounded(.towardZero) == value else { return .failure(.fractional) }
        guard value <= Double(Int32.max) else { return .failure(.tooLarge) }
        return .success(Int32(value))
    }

    /// Powers of ten that are exact in Float32.
    static let exactPowers: [Float] = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10]

    /// Parses a decimal number in `bytes[start..<stop]`, correctly rounded to Float32.
    ///
    /// Grammar: `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`, or `inf`, `infinity`, `nan` in any
    /// case (returned as non-finite values so the caller can say so). Returns nil when the text is not a number.
    @inline(__always)
    static func parseFloat(_ bytes: UnsafePointer<UInt8>, _ start: Int, _ stop: Int) -> Float? {
        var i = start
        var negative = false
        if i < stop, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") {
            negative = bytes[i] == UInt8(ascii: "-")
            i += 1
        }
        let mantissaLimit: UInt64 = 1_000_000_000_000_000_000
        var mantissa: UInt64 = 0
        var exponent = 0
        var sawDigit = false
        var inexact = false

        while i < stop {
            let digit = UInt64(bytes[i]) &- 48
            guard digit <= 9 else { break }
            sawDigit = true
            if mantissa < mantissaLimit {
                mantissa = mantissa * 10 + digit
            } else {
                exponent += 1
                inexact = true
            }
            i += 1
        }
        if i < stop, bytes[i] == UInt8(ascii: ".") {
            i += 1
            while i < stop {
                let digit = UInt64(bytes[i]) &- 48
                guard digit <= 9 else { break }
                sawDigit = true
                if mantissa < mantissaLimit {
                    mantissa = mantissa * 10 + digit
                    exponent -= 1
                } else {
                    inexact = true
                }
                i += 1
            }
        }
        guard sawDigit else { return parseSpecial(bytes, i, stop, negative: negative) }
        if i < stop, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            var exponentNegative = false
            if i < stop, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") {
                exponentNegative = bytes[i] == UInt8(ascii: "-")
                i += 1
            }
            var written = 0
            var sawExponentDigit = false
            while i < stop {
                let digit = Int(bytes[i]) &- 48
                guard digit >= 0, digit <= 9 else { break }
                sawExponentDigit = true
                if written < 100_000 { written = written * 10 + digit }
                i += 1
            }
            guard sawExponentDigit else { return nil }
            exponent += exponentNegative ? -written : written
        }
        guard i == stop else { return nil }

        // Clinger's fast path: an exact mantissa and an exact power of ten give one correctly rounded operation.
        if !inexact, mantissa <= 1 << 24, exponent >= -10, exponent <= 10 {
            var value = Float(mantissa)
            if exponent >= 0 {
                value *= exactPowers[exponent]
            } else {
                value /= exactPowers[-exponent]
            }
            return negative ? -value : value
        }
        if mantissa == 0 { return negative ? -0.0 : 0.0 }
        // Everything else goes through the standard library's correctly rounded conversion.
        let text = String(decoding: UnsafeBufferPointer(start: bytes + start, count: stop - start), as: UTF8.self)
        return Float(text)
    }

    /// `inf`, `infinity` or `nan` (any case) after an optional sign, as non-finite values; nil for anything else.
    static func parseSpecial(_ bytes: UnsafePointer<UInt8>, _ start: Int, _ stop: Int, negative: Bool) -> Float? {
        var word = ""
        for i in start..<stop {
            let byte = bytes[i] | 0x20  // ASCII lower case
            guard byte >= UInt8(ascii: "a"), byte <= UInt8(ascii: "z") else { return nil }
            word.unicodeScalars.append(Unicode.Scalar(byte))
            if word.utf8.count > 8 { return nil }
        }
        switch word {
        case "inf", "infinity": return negative ? -.infinity : .infinity
        case "nan": return .nan
        default: return nil
        }
    }

    /// The token as text for a message, shortened when long.
    static func token(_ bytes: UnsafePointer<UInt8>, _ start: Int, _ stop: Int) -> String {
        let shown = min(stop - start, 40)
        let text = String(decoding: UnsafeBufferPointer(start: bytes + start, count: shown), as: UTF8.self)
        return shown < stop - start ? text + "..." : text
    }
}

// MARK: - Formatting

private enum CSVFormatter {
    /// Appends the decimal digits of `value`.
    static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        let zero = UInt8(ascii: "0")
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        if magnitude < 1000 {  // pixels and labels: no loop
            let m = UInt8(magnitude)
            if m >= 100 { out.append(zero + m / 100) }
            if m >= 10 { out.append(zero + m / 10 % 10) }
            out.append(zero + m % 10)
            return
        }
        let first = out.count
        while magnitude > 0 {
            out.append(zero + UInt8(magnitude % 10))
            magnitude /= 10
        }
        out[first...].reverse()
    }

    /// Appends a finite feature: an integer when integral, else the shortest round-trip decimal.
    static func appendFeature(_ value: Float, to out: inout [UInt8]) {
        if value.rounded(.towardZero) == value, value.magnitude < 1e15 {
            appendInteger(Int64(value), to: &out)
        } else {
            out.append(contentsOf: value.description.utf8)
        }
    }
}
