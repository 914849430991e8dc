import ArgumentParser
import FlockCore

/// Reports a command's failure on standard error and gives the exit status to throw (1: a bad file or data):
/// one line `error: MESSAGE`, or under `--json` one object `{"error": MESSAGE, "code": 1}`.
func failure(_ message: String, json: Bool) -> ExitCode {
    StandardError.line(json ? JSONOutput.line(FailureJSON(error: message, code: 1)) : "error: \(message)")
    return ExitCode(1)
}

/// `--json`'s form of an error.
private struct FailureJSON: Encodable {
    var error: String
    var code: Int32
}
