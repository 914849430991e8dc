import FlockCore
import FlockTestSupport
import Foundation
import Testing

/// Directory locks: one holder at a time, a clear refusal naming the folder and the holder, and release on demand
/// or when the value is freed.
@Suite struct DirectoryLockTests {
    @Test func aSecondLockOnOneFolderIsRefusedUntilTheFirstIsReleased() throws {
        let folder = TestData.temporaryFolder()
        let first = try DirectoryLock(directory: folder)
        #expect(first.isHeld)
        do {
            _ = try DirectoryLock(directory: folder)
            Issue.record("a second lock on a held folder must be refused")
        } catch {
            #expect(error.code == .locked)
            #expect(error.message.contains(folder))
            #expect(error.message.contains("another process (pid \(getpid()))"))
        }
        first.release()
        #expect(!first.isHeld)
        first.release()
        let second = try DirectoryLock(directory: folder)
        #expect(second.isHeld)
    }

    @Test func freeingTheValueReleasesTheLock() throws {
        let folder = TestData.temporaryFolder()
        do {
            let held = try DirectoryLock(directory: folder)
            #expect(held.isHeld)
        }
        let again = try DirectoryLock(directory: folder)
        #expect(again.isHeld)
    }

    @Test func theLockFileIsTheOwnersAlone() throws {
        let folder = TestData.temporaryFolder()
        let lock = try DirectoryLock(directory: folder)
        var info = stat()
        #expect(stat(lock.path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        let recorded = try String(contentsOfFile: lock.path, encoding: .utf8)
        #expect(recorded == "\(getpid())\n")
    }

    @Test func aMissingFolderIsNamed() {
        do {
            _ = try DirectoryLock(directory: "/nonexistent/flock-lock-test")
            Issue.record("locking a missing folder must throw")
        } catch {
            #expect(error.code == .fileNotFound)
            #expect(error.message.contains("/nonexistent/flock-lock-test"))
        }
    }
}
