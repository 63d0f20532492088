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
        try requireMounted(mounted, "mount a tmpfs at \(path)", sourceLocation)
        try await body()
    }

    /// `source` bind-mounted at `target` (created) for the body, then unmounted; skipped or
    /// failed like `withTmpfs` where mounting is not allowed.
    static func withBind(
        _ source: String, at target: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
    ) throws {
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let mounted = (try? TestProcess.run("/usr/bin/mount", ["--bind", source, target]))?.status == 0
        defer { if mounted { _ = try? TestProcess.run("/usr/bin/umount", [target]) } }
        try requireMounted(mounted, "bind-mount at \(target)", sourceLocation)
        try body()
    }

    /// Returns when mounted. Otherwise the test is cancelled (reported as skipped, with the
    /// reason) or, where CI requires real mounts, fails.
    private static func requireMounted(_ mounted: Bool, _ what: String, _ sourceLocation: SourceLocation) throws {
        guard !mounted else { return }
        try #require(
            ProcessInfo.processInfo.environment["SECRET_ROTATOR_REQUIRE_REAL_MOUNTS"] != "1", "cannot \(what)",
            sourceLocation: sourceLocation)
        try Test.cancel("cannot \(what) here (not root?)", sourceLocation: sourceLocation)
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
