import FlockCore

/// A server's `HOST:PORT`, as given to `--listen` and `--server` (`127.0.0.1:7070`, `localhost:7070`,
/// `[::1]:7070`). Port 0 asks the operating system for a free port when listening.
public struct ServerAddress: Sendable, Equatable, CustomStringConvertible {
    /// Host name or IP literal (without brackets for IPv6).
    public var host: String
    /// TCP port, 0-65535.
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`.
    /// - Throws: ``CoreError/Code/invalidArgument`` saying what the form must be.
    public init(parsing text: String) throws(CoreError) {
        let form = "expected HOST:PORT, e.g. 127.0.0.1:7070"
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw CoreError(.invalidArgument, "address '\(text)': \(form)")
            }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw CoreError(.invalidArgument, "address '\(text)': \(form)") }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" }) else {
            throw CoreError(.invalidArgument, "address '\(text)': missing or malformed host; \(form)")
        }
        guard let number = Int(port), (0...65_535).contains(number) else {
            throw CoreError(.invalidArgument, "address '\(text)': the port must be a number from 0 to 65535")
        }
        self.init(host: String(host), port: number)
    }

    /// True for an IPv6 literal.
    public var isIPv6: Bool { host.contains(":") }
    /// True for an IPv4 literal (four dotted numbers).
    public var isIPv4: Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
    }

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
