#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file reads and crash-safe writes, shared by every file format in FlockCore.
public enum FileIO {
    /// Reads a whole file into memory.
    /// - Throws: `fileNotFound` ("PATH: no such file") or `io` with the system's reason.
    public static func read(_ path: String) throws(CoreError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT { throw CoreError(.fileNotFound, "\(path): no such file") }
            throw CoreError(.io, "\(path): cannot open: \(systemErrorText(code))")
        }
        defer { close(fd) }

        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw CoreError(.io, "\(path): cannot read: \(systemErrorText(errno))")
        }
        if info.st_mode & S_IFMT == S_IFDIR {
            throw CoreError(.io, "\(path): is a directory, not a file")
        }

        // Read the size the file claims, and keep going in case it grew or is not a regular file.
        var bytes = [UInt8](repeating: 0, count: max(Int(info.st_size), 0) + 1)
        var filled = 0
        var failure: Int32 = 0
        while true {
            let n = bytes.withUnsafeMutableBufferPointer { buffer in
                Glibc.read(fd, buffer.baseAddress! + filled, buffer.count - filled)
            }
            if n > 0 {
                filled += n
                if filled == bytes.count {
                    bytes.append(contentsOf: repeatElement(0, count: max(bytes.count, 1 << 16)))
                }
            } else if n == 0 {
                break
            } else if errno != EINTR {
                failure = errno
                break
            }
        }
        if failure != 0 { throw CoreError(.io, "\(path): cannot read: \(systemErrorText(failure))") }
        bytes.removeLast(bytes.count - filled)
        return bytes
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory, `fsync`, `rename`, then an
    /// `fsync` of the directory so that the rename itself is durable.
    /// - Parameter permissions: the file's exact mode (0o600 for files readable by the owner only), or `nil` for
    ///   the mode any new file gets: 0o666 narrowed by the process's umask.
    /// - Throws: `io` naming the path and the system's reason.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, permissions: mode_t? = nil) throws(CoreError) {
        let directory: String
        let name: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
            name = String(path[path.index(after: slash)...])
        } else {
            directory = "."
            name = path
        }
        guard !name.isEmpty else { throw CoreError(.io, "\(path): cannot write: the path names a directory") }
        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let temporary = (directory == "/" ? "" : directory) + "/.\(name).tmp-\(getpid())-\(suffix)"

        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, permissions ?? 0o666)
        if fd < 0 {
            let code = errno
            if code == ENOENT { throw CoreError(.io, "\(path): cannot write: directory \(directory) does not exist") }
            throw CoreError(.io, "\(path): cannot write: \(systemErrorText(code))")
        }
        var failure = writeAll(bytes, to: fd)
        // An exact mode is exact whatever the umask; without one the umask decides, as for any new file.
        if failure == 0, let permissions, fchmod(fd, permissions) != 0 { failure = errno }
        if failure == 0, fsync(fd) != 0 { failure = errno }
        if close(fd) != 0, failure == 0 { failure = errno }
        if failure == 0, rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw CoreError(.io, "\(path): cannot write: \(systemErrorText(failure))")
        }
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// Appends `bytes` to `path` (created if missing) and `fsync`s it before returning, so that what was
    /// appended survives a crash once this returns. A crash during the call may leave a torn tail, which
    /// readers must detect (for example with a checksum per record).
    /// - Parameter permissions: the file's exact mode, whatever the umask (an existing file is set to it too), or
    ///   `nil` for 0o666 narrowed by the umask on creation.
    /// - Throws: `io` naming the path and the system's reason.
    public static func appendDurably(_ bytes: [UInt8], to path: String, permissions: mode_t? = nil) throws(CoreError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, permissions ?? 0o666)
        if fd < 0 { throw CoreError(.io, "\(path): cannot append: \(systemErrorText(errno))") }
        var failure: Int32 = 0
        if let permissions {
            var info = stat()
            if fstat(fd, &info) == 0, info.st_mode & 0o7777 != permissions, fchmod(fd, permissions) != 0 {
                failure = errno
            }
        }
        if failure == 0 { failure = writeAll(bytes, to: fd) }
        if failure == 0, fsync(fd) != 0 { failure = errno }
        if close(fd) != 0, failure == 0 { failure = errno }
        if failure != 0 { throw CoreError(.io, "\(path): cannot append: \(systemErrorText(failure))") }
    }

    /// Creates the folder `path` for one owner's files (mode 0o700) with any missing parents (0o777 narrowed by
    /// the umask, as `mkdir -p` makes them), or narrows an existing folder of this user's that others could read
    /// or enter to 0o700. A folder of another user, or a shared one (sticky, as `/tmp`), is left as it is: see
    /// ``isPrivateDirectory(_:)``.
    /// - Returns: whether an existing folder was narrowed.
    /// - Throws: `io` naming the folder and the system's reason.
    @discardableResult
    public static func createPrivateDirectory(_ path: String) throws(CoreError) -> Bool {
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else { throw CoreError(.io, "\(path): exists and is not a folder") }
            guard info.st_mode & 0o077 != 0, info.st_uid == geteuid(), info.st_mode & S_ISVTX == 0 else { return false }
            if chmod(path, 0o700) != 0 {
                throw CoreError(.io, "\(path): cannot narrow the folder to mode 0700: \(systemErrorText(errno))")
            }
            return true
        }
        var prefix = path.hasPrefix("/") ? "/" : ""
        let parts = path.split(separator: "/")
        for (i, part) in parts.enumerated() {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + part
            let last = i == parts.count - 1
            if mkdir(prefix, last ? 0o700 : 0o777) != 0 {
                let code = errno
                guard code == EEXIST else { throw CoreError(.io, "\(prefix): cannot create the folder: \(systemErrorText(code))") }
                if last { return try createPrivateDirectory(path) }
            } else if last, chmod(prefix, 0o700) != 0 {
                throw CoreError(.io, "\(prefix): cannot set the folder's mode: \(systemErrorText(errno))")
            }
        }
        return false
    }

    /// Whether `path` is a folder that no other user can read or enter (no group or other bits).
    public static func isPrivateDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR && info.st_mode & 0o077 == 0
    }

    /// Writes every byte, retrying after interruptions. - Returns: 0, or the `errno` that stopped it.
    private static func writeAll(_ bytes: [UInt8], to fd: Int32) -> Int32 {
        bytes.withUnsafeBufferPointer { buffer in
            var written = 0
            while written < buffer.count {
                let n = write(fd, buffer.baseAddress! + written, buffer.count - written)
                if n >= 0 {
                    written += n
                } else if errno != EINTR {
                    return errno
                }
            }
            return 0
        }
    }

    /// The C library's text for an `errno` value.
    public static func systemErrorText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}
