import Foundation
import Testing

/// A real tmpfs for ENOSPC/EROFS tests: mounted over a directory for the body, then lazily
/// unmounted. Where mounting is not allowed (not root) the body is skipped with a note, unless
/// CI requires real mounts (SECRET_ROTATOR_REQUIRE_REAL_MOUNTS=1), where that is a failure.
enum TestMount {
    static func withTmpfs(
        at path: String, options: String = "size=256k,mode=0700", sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () async throws -> Void
    ) async throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let mounted = (try? TestProcess.run("/usr/bin/mount", ["-t", "tmpfs", "-o", options, "tmpfs", path]))?.status == 0
        defer { if mounted { _ = try? TestProcess.run("/usr/bin/umount", ["-l", path]) } }
        guard mounted else {
            try #require(
                ProcessInfo.processInfo.environment["SECRET_ROTATOR_REQUIRE_REAL_MOUNTS"] != "1", "cannot mount a tmpfs at \(path)",
                sourceLocation: sourceLocation)
            print("skipped: cannot mount a tmpfs here (not root?)")
            return
        }
        try await body()
    }

    /// Fills the file system holding `directory` with one file until writes fail; returns the
    /// file, whose removal gives the space back.
    static func fill(_ directory: String) -> String {
        let filler = "\(directory)/filler"
        let descriptor = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        let block = [UInt8](repeating: 0x5A, count: 4096)
        while write(descriptor, block, block.count) > 0 {}
        close(descriptor)
        return filler
    }
}
