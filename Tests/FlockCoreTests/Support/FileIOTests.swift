import FlockCore
import FlockTestSupport
import Foundation
import Testing

/// File modes: private folders for data directories, exact modes when asked for, the umask's choice otherwise.
@Suite struct FileIOTests {
    static func mode(_ path: String) -> mode_t {
        var info = stat()
        _ = stat(path, &info)
        return info.st_mode & 0o7777
    }

    @Test func aPrivateFolderIsCreatedWithItsParentsAndIsTheOwnersAlone() throws {
        let folder = TestData.temporaryFolder()
        let path = folder + "/a/b/data"
        #expect(try FileIO.createPrivateDirectory(path) == false)
        #expect(Self.mode(path) == 0o700)
        #expect(FileIO.isPrivateDirectory(path))
        // Again: nothing to do.
        #expect(try FileIO.createPrivateDirectory(path) == false)
    }

    @Test func anOwnFolderThatOthersCanReadIsNarrowedAndASharedOneIsLeftAlone() throws {
        let folder = TestData.temporaryFolder()
        let own = folder + "/own", shared = folder + "/shared"
        try FileManager.default.createDirectory(atPath: own, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: false)
        chmod(own, 0o755)
        chmod(shared, 0o1777)
        #expect(try FileIO.createPrivateDirectory(own))
        #expect(Self.mode(own) == 0o700)
        // A sticky folder (as /tmp) is everyone's: never narrowed.
        #expect(try FileIO.createPrivateDirectory(shared) == false)
        #expect(Self.mode(shared) == 0o1777)
        #expect(!FileIO.isPrivateDirectory(shared))
    }

    @Test func exactModesAreExactAndAnAppendNarrowsAnOlderFile() throws {
        let folder = TestData.temporaryFolder()
        try FileIO.writeAtomically([1, 2, 3], to: folder + "/secret", permissions: 0o600)
        #expect(Self.mode(folder + "/secret") == 0o600)
        try FileIO.appendDurably([1], to: folder + "/journal")
        chmod(folder + "/journal", 0o644)
        try FileIO.appendDurably([2], to: folder + "/journal", permissions: 0o600)
        #expect(Self.mode(folder + "/journal") == 0o600)
        #expect(try FileIO.read(folder + "/journal") == [1, 2])
        // Without a mode the umask decides, as for any new file: never more than 0666.
        try FileIO.writeAtomically([4], to: folder + "/plain")
        // The process's umask, read without changing it (tests run in parallel).
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("Umask:") })
        let mask = try #require(mode_t(line.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8))
        #expect(Self.mode(folder + "/plain") == 0o666 & ~mask)
    }
}
