#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// An exclusive claim on a folder, so that two processes never work in one folder at once: an exclusive,
/// non-blocking `flock(2)` on a lock file inside the folder, held until `release()` or until the value is freed.
///
/// The lock file (`.lock` unless told otherwise) is created with mode 0600 and holds the holder's process id,
/// so that a refused process can say who holds the folder. The file is left in place on release: removing it
/// would let a third process lock a new file while a second still waits on the old one. The operating system
/// drops the lock when the holder exits, however it exits, so a crash never leaves a folder locked.
///
/// `flock` locks belong to an open file description, so two `DirectoryLock`s on one folder exclude each other
/// within one process as well as across processes.
public final class DirectoryLock: Sendable {
    /// The folder this lock claims.
    public let directory: String
    /// The lock file inside `directory`.
    public let path: String
    /// The open lock file's descriptor, or -1 once released.
    private let descriptor: Mutex<Int32>

    /// Takes the lock on `directory`, or throws at once if another holder has it.
    /// - Parameters:
    ///   - directory: an existing folder.
    ///   - name: the lock file's name inside the folder.
    ///   - advice: what the refused user should do, ending the `locked` error's message.
    /// - Throws: `locked` naming the folder and the holder's process id when another holder has the lock;
    ///   `fileNotFound` when the folder does not exist; `io` with the system's reason for anything else.
    public init(
        directory: String, name: String = ".lock", advice: String = "stop that process first, or use another folder"
    ) throws(CoreError) {
        self.directory = directory
        self.path = (directory.hasSuffix("/") ? directory : directory + "/") + name
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 {
            let code = errno
            if code == ENOENT { throw CoreError(.fileNotFound, "\(directory): no such folder") }
            throw CoreError(.io, "\(path): cannot open the lock file: \(FileIO.systemErrorText(code))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EWOULDBLOCK {
                let holder = Self.recordedHolder(fd)
                close(fd)
                let who = holder.map { "another process (pid \($0))" } ?? "another process"
                throw CoreError(
                    .locked,
                    "\(directory) is in use by \(who): \(advice)"
                )
            }
            close(fd)
            throw CoreError(.io, "\(path): cannot lock: \(FileIO.systemErrorText(code))")
        }
        // The mode matters only when the file was created; a lock file left by an older holder keeps its own
        // mode, so narrow it here too. Neither this nor the pid below is needed for the lock itself.
        _ = fchmod(fd, 0o600)
        let text = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) == 0 {
            _ = text.withUnsafeBufferPointer { pwrite(fd, $0.baseAddress!, $0.count, 0) }
        }
        self.descriptor = Mutex(fd)
    }

    /// Whether the lock is still held by this value.
    public var isHeld: Bool { descriptor.withLock { $0 >= 0 } }

    /// Gives the lock up. Calling it again does nothing.
    public func release() {
        descriptor.withLock { fd in
            guard fd >= 0 else { return }
            // Closing the last descriptor of the open file description drops the flock.
            close(fd)
            fd = -1
        }
    }

    deinit { release() }

    /// The process id the current holder wrote into the lock file, if it has written one yet.
    private static func recordedHolder(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBufferPointer { pread(fd, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[..<n], as: UTF8.self)
        guard let pid = Int32(text.prefix { $0 != "\n" }), pid > 0 else { return nil }
        return pid
    }
}
