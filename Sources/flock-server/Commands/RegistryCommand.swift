import ArgumentParser
import FlockCore
import FlockRegistry
import Foundation

/// `flock-server registry`: queries the model registry in a data directory, read-only, whether the server runs
/// or not.
struct RegistryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registry",
        abstract: "Query the model registry: versions, lineage, alias history, diffs, queries, export and verification.",
        discussion: """
            Every subcommand reads DATA_DIR/registry/registry.sqlite directly, read-only, so it works while the \
            server runs (it sees the last committed state) and when it is down. VERSION is a version number, an \
            alias (production, candidate, shadow, or your own), or a hash prefix of 6 or more hex digits. \
            Promotion, rollback and pinning go through the running server: flock-server admin promote|rollback|pin|unpin.
            With --json every result is one JSON value on standard output, and an error is one JSON object \
            {"error": MESSAGE, "code": EXIT_CODE} on standard error (exit 1, or 2 for a query that does not parse); \
            a bad option or value is a usage error (exit 64, text).
            """,
        subcommands: [
            List.self, Show.self, Lineage.self, History.self, Analyses.self, Diff.self, Query.self, Export.self, Verify.self,
            AliasCommand.self, Tag.self, Retire.self, GC.self,
        ])

    /// Options every registry subcommand takes.
    struct Location: ParsableArguments {
        @Option(name: .customLong("data-dir"), help: ArgumentHelp("The server's data directory.", valueName: "DIR"))
        var dataDir: String = "./flock-data"

        @Flag(help: "Print JSON instead of a table; an error is then {\"error\": …, \"code\": …} on standard error.")
        var json = false

        /// Opens the registry read-only, or prints why not and exits 1.
        func open() throws -> RegistryReader {
            do { return try RegistryReader.openReadOnly(dataDirectory: dataDir) } catch { fail(error) }
        }

        /// Opens the registry for one of the few commands that write, or prints why not and exits 1.
        func openForWriting() -> Registry {
            attempt { () throws(RegistryError) in try Registry(dataDirectory: dataDir) }
        }

        /// Prints a registry error (as JSON under `--json`) and exits with code 1 (2 for a query that does not parse).
        func fail(_ error: RegistryError) -> Never {
            RegistryCommand.fail(error, json: json)
        }

        /// Runs `body`, turning a registry error into a message and an exit code.
        func attempt<T>(_ body: () throws(RegistryError) -> T) -> T {
            do { return try body() } catch { fail(error) }
        }

        /// Prints `value` as JSON under `--json`, else `text`.
        func print(_ value: some Encodable, text: @autoclosure () -> String) {
            Swift.print(json ? JSONOutput.line(value) : text())
        }
    }

    /// What the audit log records of a command that writes.
    struct Audit: ParsableArguments {
        @Option(help: "Why (recorded in the audit log).") var reason: String
        @Option(help: "Who is doing it (recorded in the audit log).") var actor: String = "admin"
    }

    /// Prints a registry error, as `{"error": …, "code": …}` when `json`, and exits with code 1 (2 for a query
    /// that does not parse).
    static func fail(_ error: RegistryError, json: Bool) -> Never {
        let code: Int32 = error.code == .query ? 2 : 1
        StandardError.line(json ? failureJSON(error.message, code: code) : "error: \(error.message)")
        Foundation.exit(code)
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List versions, newest first: status, round, accuracy, aliases, hash.")
        @OptionGroup var location: Location
        @Option(help: "Show at most this many.") var limit: Int?
        func run() throws {
            let reader = try location.open()
            let details = location.attempt { () throws(RegistryError) in try RegistryReport.details(try reader.versions(limit: limit), reader: reader) }
            print(location.json ? JSONOutput.line(details) : RegistryReport.table(details))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one version: every field, its tags and aliases, and its events.")
        @Argument(help: "Version number, alias or hash prefix.") var version: String
        @OptionGroup var location: Location
        func run() throws {
            let reader = try location.open()
            let (detail, events) = location.attempt { () throws(RegistryError) in
                let v = try reader.resolve(version)
                return (try RegistryReport.details([v], reader: reader)[0], try reader.events(version: v.id))
            }
            location.print(RegistryReport.ShowJSON(detail: detail, events: events), text: RegistryReport.show(detail, events: events))
        }
    }

    struct Lineage: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the chain of parents from the first version to this one, and its children.")
        @Argument(help: "Version number, alias or hash prefix.") var version: String
        @OptionGroup var location: Location
        func run() throws {
            let reader = try location.open()
            let (ancestry, children) = location.attempt { () throws(RegistryError) in try reader.lineage(try reader.resolve(version).id) }
            if location.json {
                struct LineageJSON: Encodable {
                    var ancestry: [ModelVersion]
                    var children: [ModelVersion]
                }
                print(JSONOutput.line(LineageJSON(ancestry: ancestry, children: children)))
            } else {
                print(RegistryReport.lineage(ancestry, children: children))
            }
        }
    }

    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the audit log: every event with its reason, actor and evidence.",
            discussion: """
                --alias production shows every move of production (promotions, rollbacks, pins) with the evidence \
                that decided it; --of VERSION shows one version's events.
                """)
        @Option(help: "Only the moves of this alias.") var alias: String?
        @Option(name: .customLong("of"), help: ArgumentHelp("Only the events of this version (number, alias or hash prefix).", valueName: "VERSION"))
        var subject: String?
        @OptionGroup var location: Location
        func run() throws {
            let reader = try location.open()
            let events = location.attempt { () throws(RegistryError) in
                try reader.events(alias: alias, version: try subject.map { v throws(RegistryError) in try reader.resolve(v).id })
            }
            print(location.json ? JSONOutput.line(events) : RegistryReport.history(events))
        }
    }

    struct Analyses: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List shadow and rollback analyses: versions compared, state, looks taken.",
            discussion: """
                A running analysis's reason says when its evidence cannot reach min_pairs (or min_edges) at the size \
                of its cohort, and what to change.
                """)
        /// An analysis state, as `--state` takes it.
        enum State: String, ExpressibleByArgument, CaseIterable {
            case running, passed, failed, inconclusive
            var analysisState: Analysis.State { Analysis.State(rawValue: rawValue)! }
        }
        @Option(help: "Only analyses in this state.") var state: State?
        @OptionGroup var location: Location
        func run() throws {
            let reader = try location.open()
            let list = location.attempt { () throws(RegistryError) in try reader.analyses(state: state?.analysisState) }
            print(location.json ? JSONOutput.line(list) : RegistryReport.analyses(list))
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Compare two versions: fields and tags that differ, and the distance between their weights.")
        @Argument(help: "The first version.") var first: String
        @Argument(help: "The second version.") var second: String
        @OptionGroup var location: Location
        func run() throws {
            let reader = try location.open()
            let diff = location.attempt { () throws(RegistryError) in try reader.diff(try reader.resolve(first).id, try reader.resolve(second).id) }
            print(location.json ? JSONOutput.line(diff) : RegistryReport.diff(diff))
        }
    }

    struct Query: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Select versions with a small query language.",
            discussion: """
                EXPR is conditions (FIELD OP VALUE, FIELD [not] in (V, ...), FIELD [not] between A and B) joined by \
                and / or / not and parentheses, then optionally order by FIELD [asc|desc] and limit N. Fields: version, \
                round (the round id), accuracy, loss, federated_accuracy, federated_loss, participants, parameters, \
                upload_bytes, download_bytes, created, parent, model, strategy, codec, status, hash, alias, tag.NAME. \
                hash takes a prefix of 6 or more hex digits; created takes a UTC date as the tables show it \
                (2026-12-03, 2026-12-03T15:02Z or 2026-12-03T15:02:36Z) and compares with the whole day, minute or \
                second. Examples:
                  accuracy >= 0.9 and round > 10 order by accuracy desc limit 5
                  alias = production
                  tag.team = "vision"
                  hash = "9ced44" or round in (3, 5, 8)
                  created between 2026-12-01 and 2026-12-03
                A query that does not parse, or nests more than 32 deep, exits with code 2 and points at the \
                offending token.
                """)
        @Argument(help: "The query.") var expression: String
        @OptionGroup var location: Location
        func run() throws {
            let reader = try location.open()
            let details = location.attempt { () throws(RegistryError) in try RegistryReport.details(try reader.query(expression), reader: reader) }
            print(location.json ? JSONOutput.line(details) : RegistryReport.table(details))
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a version's model to a file, verified against its hash and signature.",
            discussion: "--format flock writes the Flock model file (flock-edge evaluate reads it); --format onnx writes an ONNX model (opset 13) that takes raw features and returns logits.")
        enum Format: String, ExpressibleByArgument, CaseIterable { case flock, onnx }
        @Argument(help: "Version number, alias or hash prefix.") var version: String
        @Option(help: "flock or onnx.") var format: Format = .flock
        @Option(help: ArgumentHelp("Where to write it.", valueName: "FILE")) var out: String
        @OptionGroup var location: Location
        func run() throws {
            let reader = try location.open()
            let (v, bytes) = location.attempt { () throws(RegistryError) in
                let v = try reader.resolve(version)
                let file = try reader.modelFile(of: v.id)
                switch format {
                case .flock: return (v, file)
                case .onnx:
                    do { return (v, try ONNXExport.export(try ModelFile.decode(bytes: file, source: "version \(v.id)").file)) } catch let error as RegistryError {
                        throw error
                    } catch {
                        throw RegistryError(.integrity, "\(error)")
                    }
                }
            }
            do { try FileIO.writeAtomically(bytes, to: out) } catch {
                location.fail(RegistryError(.io, error.message))
            }
            if location.json {
                struct ExportJSON: Encodable {
                    var version: Int64
                    var format: String
                    var path: String
                    var bytes: Int
                    var hash: String
                }
                print(JSONOutput.line(ExportJSON(version: v.id, format: format.rawValue, path: out, bytes: bytes.count, hash: v.hash)))
            } else {
                print("version \(v.id) (\(v.hash.prefix(12))) written to \(out) as \(format.rawValue), \(bytes.count) bytes")
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-hash every artifact and check every signature; exit 1 naming what does not match.")
        @OptionGroup var location: Location
        func run() throws {
            let reader = try location.open()
            let (problems, checked) = location.attempt { () throws(RegistryError) in try reader.verify() }
            let versions = location.attempt { () throws(RegistryError) in try reader.versions().count }
            if location.json {
                struct VerifyJSON: Encodable {
                    var ok: Bool
                    var versions: Int
                    var artifacts: Int
                    var problems: [RegistryReader.Problem]
                }
                print(JSONOutput.line(VerifyJSON(ok: problems.isEmpty, versions: versions, artifacts: checked, problems: problems)))
            } else if problems.isEmpty {
                print("ok: \(versions) versions, \(checked) artifacts re-hashed, every signature verifies")
            } else {
                for problem in problems { print("MISMATCH \(problem)") }
            }
            if !problems.isEmpty { throw ExitCode(1) }
        }
    }

    struct AliasCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "alias",
            abstract: "Point an alias of your own at a version, or remove it (each move is an audit event).",
            discussion: "production moves only through flock-server admin promote|rollback|pin; candidate and shadow belong to the promotion policy.",
            subcommands: [Set.self, Remove.self])

        static func checkOwn(_ name: String) throws {
            guard ![FlockRegistry.Alias.production, FlockRegistry.Alias.candidate, FlockRegistry.Alias.shadow].contains(name) else {
                throw ValidationError("\(name) is managed by the server: use flock-server admin promote|rollback|pin for production")
            }
        }

        struct Set: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Point alias NAME at VERSION.")
            @Argument(help: "The alias: a letter, then letters, digits, '_', '.' or '-'.") var name: String
            @Argument(help: "Version number, alias or hash prefix.") var version: String
            @OptionGroup var audit: Audit
            @OptionGroup var location: Location
            func validate() throws { try AliasCommand.checkOwn(name) }
            func run() throws {
                let registry = location.openForWriting()
                let v = location.attempt { () throws(RegistryError) in try registry.reader.resolve(version) }
                let event = location.attempt { () throws(RegistryError) in try registry.moveAlias(name, to: v.id, actor: audit.actor, reason: audit.reason) }
                location.print(event, text: "\(name) -> version \(v.id)")
            }
        }

        struct Remove: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove alias NAME.")
            @Argument(help: "The alias.") var name: String
            @OptionGroup var audit: Audit
            @OptionGroup var location: Location
            func validate() throws { try AliasCommand.checkOwn(name) }
            func run() throws {
                let registry = location.openForWriting()
                guard location.attempt({ () throws(RegistryError) in try registry.reader.alias(name) }) != nil else {
                    location.fail(RegistryError(.notFound, "there is no alias \(name)"))
                }
                location.attempt { () throws(RegistryError) in try registry.removeAlias(name, actor: audit.actor, reason: audit.reason) }
                struct RemovedJSON: Encodable {
                    var alias: String
                    var removed: Bool
                }
                location.print(RemovedJSON(alias: name, removed: true), text: "\(name) removed")
            }
        }
    }

    struct Tag: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set free-form tags on a version (KEY=VALUE; an existing key is replaced); query them as tag.KEY.")
        @Argument(help: "Version number, alias or hash prefix.") var version: String
        @Argument(help: "Tags as KEY=VALUE.") var tags: [String]
        @OptionGroup var location: Location
        func validate() throws {
            guard !tags.isEmpty else { throw ValidationError("give at least one KEY=VALUE") }
            for tag in tags {
                let parts = tag.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 64, parts[1].count <= 1_024,
                      parts[0].allSatisfy({ $0.isLetter || $0.isNumber || "_-.".contains($0) }) else {
                    throw ValidationError("\(tag): tags are KEY=VALUE, KEY of letters, digits, '_', '-', '.' (64 at most), VALUE at most 1,024 characters")
                }
            }
        }
        func run() throws {
            let registry = location.openForWriting()
            let v = location.attempt { () throws(RegistryError) in try registry.reader.resolve(version) }
            for tag in tags {
                let parts = tag.split(separator: "=", maxSplits: 1).map(String.init)
                location.attempt { () throws(RegistryError) in try registry.setTag(parts[0], parts[1], on: v.id) }
            }
            let all = location.attempt { () throws(RegistryError) in try registry.reader.tags(v.id) }
            struct TagJSON: Encodable {
                var version: Int64
                var tags: [String: String]
            }
            location.print(TagJSON(version: v.id, tags: all), text: "version \(v.id): \(tags.joined(separator: " "))")
        }
    }

    struct Retire: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Retire a version (no alias may point at it); its artifact becomes collectable by gc, its row stays.")
        @Argument(help: "Version number or hash prefix.") var version: String
        @OptionGroup var audit: Audit
        @OptionGroup var location: Location
        func run() throws {
            let registry = location.openForWriting()
            let v = location.attempt { () throws(RegistryError) in try registry.reader.resolve(version) }
            location.attempt { () throws(RegistryError) in try registry.setStatus(of: v.id, to: .retired, actor: audit.actor, reason: audit.reason) }
            let retired = location.attempt { () throws(RegistryError) in try registry.reader.version(v.id) }
            location.print(retired, text: "version \(v.id) retired")
        }
    }

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Delete the artifacts of retired versions no alias points at, and files no version names; rows and events stay.")
        @Option(help: "Who is doing it (recorded in the audit log).") var actor: String = "admin"
        @OptionGroup var location: Location
        func run() throws {
            let registry = location.openForWriting()
            let (hashes, bytes) = location.attempt { () throws(RegistryError) in try registry.collectGarbage(actor: actor) }
            if location.json {
                struct GCJSON: Encodable {
                    var removed: [String]
                    var bytes: Int64
                }
                print(JSONOutput.line(GCJSON(removed: hashes, bytes: bytes)))
            } else {
                print("removed \(hashes.count) artifacts, \(bytes) bytes")
            }
        }
    }
}
