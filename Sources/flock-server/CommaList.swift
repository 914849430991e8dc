import ArgumentParser
import Foundation

/// Parsing of comma-separated option values such as `--threads 1,2`.
enum CommaList {
    /// The items of `text`, trimmed; throws when one is empty.
    static func items(_ text: String, option: String) throws -> [String] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard !items.contains(where: \.isEmpty) else {
            throw ValidationError("\(option) takes a comma-separated list without empty items, e.g. 1,2")
        }
        return items
    }

    /// Positive integers, each listed once; throws a message naming `option` otherwise.
    static func positiveIntegers(_ text: String, option: String) throws -> [Int] {
        let values = try items(text, option: option).map { item in
            guard let value = Int(item), value >= 1 else {
                throw ValidationError("\(option): '\(item)' is not a whole number of at least 1")
            }
            return value
        }
        try checkUnique(values, option: option)
        return values
    }

    /// Items from `allowed` (compared lowercased, returned lowercased), each listed once.
    static func choices(_ text: String, from allowed: [String], option: String) throws -> [String] {
        let values = try items(text, option: option).map { item in
            let value = item.lowercased()
            guard allowed.contains(value) else {
                throw ValidationError("\(option): '\(item)' is not one of \(allowed.joined(separator: ", "))")
            }
            return value
        }
        try checkUnique(values, option: option)
        return values
    }

    private static func checkUnique<T: Hashable>(_ values: [T], option: String) throws {
        var seen = Set<T>()
        for value in values where !seen.insert(value).inserted {
            throw ValidationError("\(option) lists \(value) twice")
        }
    }
}
