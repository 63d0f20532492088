#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The daemon's private state directory and its layout (Architecture, "State directory"):
///
///     <state>/lock                 flock held by the one writer (StateDirectoryLock)
///     <state>/apps/<app>.json      AppState, no secrets
///     <state>/current/<app>.json   CurrentSecret, 0600: the secret the outputs should hold
///     <state>/requests/            operator requests (`rotate`, `fetch`) for a running daemon
///     <state>/corrupt/             unreadable records, moved aside with a timestamp
///
/// Every directory is 0700 and every record is replaced with `AtomicFileWriter` (write, fsync,
/// rename, fsync the directory), so a crash leaves the old or the new record, and a record is
/// durable when a save returns. `prepare()` migrates older layouts into `current/`:
/// `<state>/pending/` (before Engine v2) and `<state>/secrets/<app>.json` (Engine v2's first
/// layout, which shared its name with the default drop directory
/// `/var/lib/secret-rotator/secrets`, so records sat among the outputs and an app named
/// `<id>.json` would have written over one).
///
/// Outputs may not be placed in here, except in a subdirectory that is not one of these
/// (`OutputPathConflicts`); the default drop directory `<state>/secrets` is such a one.
public struct StateDirectory: Sendable {
    public let path: String
    private let writer = AtomicFileWriter()

    public init(path: String) {
        self.path = path
    }

    public var lockPath: String { "\(path)/lock" }
    public var requestsPath: String { "\(path)/requests" }
    var appsPath: String { "\(path)/apps" }
    var secretsPath: String { "\(path)/current" }
    var legacySecretsPath: String { "\(path)/secrets" }

    /// The names in here that belong to the state directory: no output may be one of them or below one.
    public static let ownEntries: Set<String> = ["lock", "apps", "current", "requests", "corrupt", "pending"]
    var legacyPendingPath: String { "\(path)/pending" }
    var corruptPath: String { "\(path)/corrupt" }

    /// A record that could not be decoded, reported instead of silently starting over.
    public struct CorruptRecord: Sendable, Equatable {
        public let appID: String
        public let movedTo: String
        public let reason: String
    }

    /// Creates the directory and its subdirectories, private to the daemon (0700), and moves
    /// records of older layouts into `current/` (a newer record there wins).
    public func prepare() throws(StateDirectoryError) {
        for directory in [path, appsPath, secretsPath, corruptPath] {
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw StateDirectoryError(
                    .unavailable, path: directory, errno: Errno(rawValue: errno), message: "cannot create the directory")
            }
        }
        // The records decide what is written where, so the directory is trusted only as an
        // output directory would be: no link on the way, nothing another user can change.
        do {
            let descriptor = try SafeDirectory.open(
                path, target: path, allowUnsafe: false, action: "keep state in",
                daemonUser: SafeDirectory.daemonUser(stateDirectory: path))
            try? descriptor.close()
        } catch where error.code == .unsafeDirectory {
            throw StateDirectoryError(.unavailable, path: path, message: error.reason)
        } catch {
            throw StateDirectoryError(.unavailable, path: path, errno: error.errno, message: "cannot open the directory")
        }
        try migrateLegacyPending()
        try migrateLegacySecrets()
        // Writes no longer sweep their directory; start-up (under the lock) clears the temp
        // files of a writer killed mid-write.
        for directory in [appsPath, secretsPath] {
            writer.sweepStaleTemporaries(inDirectory: directory)
        }
    }

    // MARK: - Records

    public func loadState(appID: String, now: Date) -> (state: AppState?, corrupt: CorruptRecord?) {
        load(AppState.self, at: statePath(appID), appID: appID, now: now)
    }

    public func saveState(_ state: AppState) throws(StateDirectoryError) {
        try save(state, to: statePath(state.appID))
    }

    public func loadSecret(appID: String, now: Date) -> (secret: CurrentSecret?, corrupt: CorruptRecord?) {
        let result = load(CurrentSecret.self, at: secretPath(appID), appID: appID, now: now)
        return (result.state, result.corrupt)
    }

    public func saveSecret(_ secret: CurrentSecret) throws(StateDirectoryError) {
        try save(secret, to: secretPath(secret.appID))
    }

    /// App ids are printable ASCII but may contain characters awkward in file names; anything
    /// outside a safe set is hex-escaped so every id maps to exactly one file. An id whose
    /// escaped form would not fit a file name (up to 128 bytes escape to 384; NAME_MAX is 255
    /// with room needed for ".json" and temp-file suffixes) is keyed by its SHA-256 instead:
    /// 128 dots once passed validation and then failed every save with ENAMETOOLONG.
    public static func fileName(for appID: String) -> String {
        let escaped = escapedName(for: appID)
        guard escaped.utf8.count > maxEscapedName else { return escaped }
        let digest = SHA256.hash(data: Array(appID.utf8))
        return "sha256-" + digest.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }

    /// Escaped names up to this length are used as they are. A long id's name ("sha256-" and
    /// 64 hex digits) could meet a short id only if that id spelled another id's digest.
    static let maxEscapedName = 128

    private static func escapedName(for appID: String) -> String {
        var name = ""
        for byte in appID.utf8 {
            let safe = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            if safe {
                name.append(Character(Unicode.Scalar(byte)))
            } else {
                let hex = String(byte, radix: 16)
                name += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return name
    }

    func statePath(_ appID: String) -> String { "\(appsPath)/\(Self.fileName(for: appID)).json" }
    func secretPath(_ appID: String) -> String { "\(secretsPath)/\(Self.fileName(for: appID)).json" }

    private func save(_ value: some Encodable, to target: String) throws(StateDirectoryError) {
        let bytes: [UInt8]
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.dateEncodingStrategy = .millisecondsSince1970
            bytes = Array(try encoder.encode(value))
        } catch {
            throw StateDirectoryError(.encodingFailed, path: target, message: "cannot encode the record")
        }
        do {
            try writer.write(bytes, to: target, options: AtomicWriteOptions(mode: [.ownerRead, .ownerWrite]))
        } catch {
            throw StateDirectoryError(.recordWriteFailed, path: target, message: "cannot save the record", cause: error)
        }
    }

    /// A record as found on disk.
    private enum Found<Record> {
        case missing
        case record(Record)
        case unreadable(String)
    }

    private func load<Record: Decodable>(_ type: Record.Type, at target: String, appID: String, now: Date)
        -> (state: Record?, corrupt: CorruptRecord?)
    {
        switch find(type, at: target) {
        case .missing: return (nil, nil)
        case .record(let record): return (record, nil)
        case .unreadable(let reason): return (nil, moveAside(target, appID: appID, now: now, reason: reason))
        }
    }

    private func find<Record: Decodable>(_ type: Record.Type, at target: String) -> Found<Record> {
        let contents: [UInt8]
        do {
            contents = try SmallFile.read(target, limit: 1 << 20, followSymlinks: false).bytes
        } catch {
            if case .system(.noSuchFileOrDirectory, _) = error { return .missing }
            return .unreadable("unreadable: \(error)")
        }
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .millisecondsSince1970
            return .record(try decoder.decode(Record.self, from: Data(contents)))
        } catch {
            return .unreadable("not a valid record")
        }
    }

    /// One app's records for `status`: read as they are, problems described rather than
    /// repaired, because a status query must not change the state directory under the daemon.
    /// The secret itself is never returned, only its version.
    public func inspect(appID: String) -> (state: AppState?, secretVersion: Int?, problems: [String]) {
        var problems: [String] = []
        var state: AppState?
        switch find(AppState.self, at: statePath(appID)) {
        case .missing: break
        case .record(let record): state = record
        case .unreadable(let reason): problems.append("state record \(statePath(appID)): \(reason)")
        }
        var secretVersion: Int?
        for candidate in [
            secretPath(appID), "\(legacyPendingPath)/\(Self.fileName(for: appID)).json",
            "\(legacySecretsPath)/\(Self.fileName(for: appID)).json",
        ] {
            switch find(CurrentSecret.self, at: candidate) {
            case .missing: continue
            case .record(let secret): secretVersion = max(secretVersion ?? 0, secret.version)
            case .unreadable(let reason): problems.append("secret record \(candidate): \(reason)")
            }
        }
        return (state, secretVersion, problems)
    }

    private func moveAside(_ target: String, appID: String, now: Date, reason: String) -> CorruptRecord {
        let stamp = Int64(now.timeIntervalSince1970 * 1000)
        let name = FilePath(target).lastComponent?.string ?? "record"
        let destination = "\(corruptPath)/\(name).\(stamp)"
        _ = rename(target, destination)
        return CorruptRecord(appID: appID, movedTo: destination, reason: reason)
    }

    /// What keeps the daemon from recording anything here, read without writing (statvfs):
    /// a full file system (blocks or inodes: the next record fails with ENOSPC) or a read-only
    /// one (EROFS). Empty when the directory can take a write, or does not exist yet.
    public func capacityProblems() -> [String] {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return [] }
        var problems: [String] = []
        if info.f_flag & UInt(ST_RDONLY) != 0 {
            problems.append("state directory \(path) is on a read-only file system (EROFS): no step can be recorded")
        }
        // A record needs a block for its temp copy; with none free the next save fails.
        if info.f_bavail == 0 {
            problems.append("state directory \(path) has no space left (ENOSPC): no step can be recorded")
        } else if info.f_files > 0 && info.f_favail < 2 {
            problems.append("state directory \(path) has no inodes left (ENOSPC): no step can be recorded")
        }
        return problems
    }

    // MARK: - Migration

    /// Before Engine v2 a received secret lived in `pending/<app>.json` only until every output
    /// held it. Such a record is an unfinished rollout: it becomes the current secret unless a
    /// newer one is already there. Each move is a rename within the state directory, then
    /// both directories are synced.
    private func migrateLegacyPending() throws(StateDirectoryError) {
        guard let entries = try? DirectoryListing.entries(atPath: legacyPendingPath) else { return }
        for name in entries.map(\.name) where name.hasSuffix(".json") && !name.hasPrefix(".") {
            let source = "\(legacyPendingPath)/\(name)"
            let destination = "\(secretsPath)/\(name)"
            guard case .record(let legacy) = find(CurrentSecret.self, at: source) else { continue }
            if case .record(let existing) = find(CurrentSecret.self, at: destination), existing.version >= legacy.version {
                _ = unlink(source)
                continue
            }
            if rename(source, destination) != 0 {
                throw StateDirectoryError(
                    .recordWriteFailed, path: destination, errno: Errno(rawValue: errno),
                    message: "cannot move the pending record of an older version into place")
            }
        }
        syncDirectory(secretsPath)
        syncDirectory(legacyPendingPath)
        // Temp files a killed writer left there go with the directory.
        writer.sweepStaleTemporaries(inDirectory: legacyPendingPath)
        _ = rmdir(legacyPendingPath)
    }

    /// Engine v2's first layout kept current secrets in `secrets/`, the default drop
    /// directory's name. A file there moves to `current/` only if it is a current-secret
    /// record of the app its name says, a regular file of ours with mode 0600: outputs in
    /// the drop directory are never touched.
    private func migrateLegacySecrets() throws(StateDirectoryError) {
        guard let entries = try? DirectoryListing.entries(atPath: legacySecretsPath) else { return }
        var moved = false
        for name in entries.map(\.name) where name.hasSuffix(".json") && !name.hasPrefix(".") {
            let source = "\(legacySecretsPath)/\(name)"
            var status = stat()
            guard lstat(source, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG, status.st_uid == geteuid(),
                status.st_mode & 0o777 == 0o600,
                case .record(let legacy) = find(CurrentSecret.self, at: source),
                Self.fileName(for: legacy.appID) + ".json" == name
            else { continue }
            let destination = "\(secretsPath)/\(name)"
            if case .record(let existing) = find(CurrentSecret.self, at: destination), existing.version >= legacy.version {
                _ = unlink(source)
                moved = true
                continue
            }
            if rename(source, destination) != 0 {
                throw StateDirectoryError(
                    .recordWriteFailed, path: destination, errno: Errno(rawValue: errno),
                    message: "cannot move the current-secret record of an older layout into place")
            }
            moved = true
        }
        if moved {
            syncDirectory(secretsPath)
            syncDirectory(legacySecretsPath)
        }
    }

    private func syncDirectory(_ directory: String) {
        guard let descriptor = try? FileDescriptor.open(FilePath(directory), .readOnly, options: [.directory, .closeOnExec])
        else { return }
        _ = fsync(descriptor.rawValue)
        try? descriptor.close()
    }
}
