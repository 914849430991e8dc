import FlockCore

/// A command's failure as `--json` prints it on standard error: `{"code": EXIT_CODE, "error": MESSAGE}`, the form
/// `flock-edge` uses too.
func failureJSON(_ message: String, code: Int32) -> String {
    JSONOutput.line(FailureJSON(error: message, code: code))
}

private struct FailureJSON: Encodable {
    var error: String
    var code: Int32
}
