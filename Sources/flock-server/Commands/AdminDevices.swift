import ArgumentParser
import FlockCore
import FlockServer
import FlockWire
import Foundation

/// A length of time on the command line: a number with a unit, `s`, `m`, `h` or `d` (`90m`, `7d`).
struct TimeSpan: ExpressibleByArgument, Sendable {
    /// The length in seconds.
    let seconds: Double

    init?(argument: String) {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]
        guard let unit = argument.last, let scale = units[unit], let value = Double(argument.dropLast()), value > 0, value.isFinite else {
            return nil
        }
        seconds = value * scale
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

extension Admin {
    /// `flock-server admin enrol`: one-time enrolment tokens for devices.
    struct Enrol: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "enrol",
            abstract: "Issue one-time enrolment tokens for edge devices (operator only).",
            discussion: """
                A device enrols once with a token: flock-edge enrol --server HOST:PORT --token TOKEN --ca DATA_DIR/tls/ca.pem. \
                It makes its key on the device and receives a short-lived device certificate naming its edge id; every later \
                call is made over mutual TLS with it, and the edge renews it before it expires. Each token enrols one device, \
                the server keeps only its hash, and it expires unused after --expires.
                """,
            subcommands: [Create.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Issue N one-time tokens and print them, one per line (only now: the server keeps their hashes).",
                discussion: "With --json: an array of {\"id\", \"token\", \"expires\"}. Issuing tokens is recorded in the audit log.")
            @Option(help: ArgumentHelp("How many tokens (1-10000).", valueName: "N")) var count: Int = 1
            @Option(help: ArgumentHelp("How long each stays usable: a number and s, m, h or d (at most 366d).", valueName: "DURATION"))
            var expires: TimeSpan = TimeSpan(argument: "7d")!
            @Option(help: ArgumentHelp("A note copied to the devices that use them (a site, a batch; at most 128 bytes).", valueName: "LABEL"))
            var label: String = ""
            @OptionGroup var connection: Admin.Connection

            func validate() throws {
                guard (1...DeviceDirectory.maximumTokensPerRequest).contains(count) else {
                    throw ValidationError("--count: 1-\(DeviceDirectory.maximumTokensPerRequest) (got \(count))")
                }
                guard expires.seconds <= 366 * 86_400 else { throw ValidationError("--expires: at most 366d") }
                guard label.utf8.count <= 128 else { throw ValidationError("--label: at most 128 bytes (got \(label.utf8.count))") }
            }

            func run() async throws {
                let (count, seconds, label) = (count, expires.seconds, label)
                let tokens = try await connection.call { client, metadata, options in
                    var request = Flock_V1_CreateEnrolmentTokensRequest()
                    request.count = UInt32(count)
                    request.lifetimeSeconds = seconds
                    request.label = label
                    return try await client.createEnrolmentTokens(request, metadata: metadata, options: options).tokens
                }
                if connection.json {
                    print(JSONOutput.line(tokens.map(TokenJSON.init)))
                } else {
                    let until = Date(timeIntervalSince1970: Double(tokens.first?.expiresUnix ?? 0))
                    StandardError.line("\(tokens.count) enrolment token\(tokens.count == 1 ? "" : "s"), each for one device, usable until \(until); not shown again")
                    for token in tokens { print(token.token) }
                }
            }

            private struct TokenJSON: Encodable {
                let id: String
                let token: String
                let expires: String
                init(_ token: Flock_V1_EnrolmentToken) {
                    id = token.id
                    self.token = token.token
                    expires = Date(timeIntervalSince1970: Double(token.expiresUnix)).formatted(.iso8601)
                }
            }
        }
    }

    /// `flock-server admin devices`: the enrolled devices.
    struct Devices: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show or revoke enrolled edge devices.",
            discussion: """
                A revoked device is refused at its next call, is dropped from the round it is in, and its id cannot be \
                enrolled again. Revoking is recorded in the audit log (operator only; listing is open to viewers).
                """,
            subcommands: [List.self, Show.self, Revoke.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Every enrolled device: id, label, enrolled, certificate expiry, state.")
            @OptionGroup var connection: Admin.Connection
            func run() async throws {
                let devices = try await connection.call { client, metadata, options in
                    try await client.listDevices(Flock_V1_ListDevicesRequest(), metadata: metadata, options: options).devices
                }
                print(connection.json ? JSONOutput.line(devices.map(DeviceJSON.init)) : Devices.render(devices))
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "One enrolled device, with its enrolment token's id and certificate serial.")
            @Argument(help: ArgumentHelp("The edge id.", valueName: "ID")) var id: String
            @OptionGroup var connection: Admin.Connection
            func run() async throws {
                let devices = try await connection.call { client, metadata, options in
                    try await client.listDevices(Flock_V1_ListDevicesRequest(), metadata: metadata, options: options).devices
                }
                guard let device = devices.first(where: { $0.edgeID == id }) else {
                    connection.fail("no enrolled device \(id); flock-server admin devices list shows them")
                }
                print(connection.json ? JSONOutput.line(DeviceJSON(device)) : Devices.detail(device))
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke a device: refused from its next call on (operator only).")
            @Argument(help: ArgumentHelp("The edge id.", valueName: "ID")) var id: String
            @OptionGroup var connection: Admin.Connection
            func run() async throws {
                let id = id
                let device = try await connection.call { client, metadata, options in
                    var request = Flock_V1_RevokeDeviceRequest()
                    request.edgeID = id
                    return try await client.revokeDevice(request, metadata: metadata, options: options)
                }
                print(connection.json ? JSONOutput.line(DeviceJSON(device)) : "revoked device \(device.edgeID)")
            }
        }

        static func render(_ devices: [Flock_V1_DeviceInfo]) -> String {
            guard !devices.isEmpty else { return "no enrolled devices" }
            return TextTable(
                header: ["edge", "label", "enrolled", "certificate until", "state"],
                rows: devices.map { device in
                    [device.edgeID, device.label.isEmpty ? "-" : device.label, day(device.enrolledUnix), day(device.certificateExpiresUnix),
                     device.revokedUnix == 0 ? "active" : "revoked \(day(device.revokedUnix))"]
                }
            ).render()
        }

        static func detail(_ device: Flock_V1_DeviceInfo) -> String {
            """
            edge                \(device.edgeID)
            label               \(device.label.isEmpty ? "-" : device.label)
            enrolled            \(time(device.enrolledUnix)) (token \(device.tokenID))
            certificate serial  \(device.certificateSerial)
            certificate until   \(time(device.certificateExpiresUnix))
            state               \(device.revokedUnix == 0 ? "active" : "revoked \(time(device.revokedUnix))")
            """
        }

        private static func day(_ unix: Int64) -> String { String(time(unix).prefix(10)) }
        private static func time(_ unix: Int64) -> String { Date(timeIntervalSince1970: Double(unix)).formatted(.iso8601) }
    }

    /// A device as `--json` prints it.
    struct DeviceJSON: Encodable {
        let edge: String
        let label: String
        let token: String
        let enrolled: String
        let serial: String
        let certificateExpires: String
        let revoked: String?
        init(_ device: Flock_V1_DeviceInfo) {
            edge = device.edgeID
            label = device.label
            token = device.tokenID
            enrolled = Date(timeIntervalSince1970: Double(device.enrolledUnix)).formatted(.iso8601)
            serial = device.certificateSerial
            certificateExpires = Date(timeIntervalSince1970: Double(device.certificateExpiresUnix)).formatted(.iso8601)
            revoked = device.revokedUnix == 0 ? nil : Date(timeIntervalSince1970: Double(device.revokedUnix)).formatted(.iso8601)
        }
    }
}
