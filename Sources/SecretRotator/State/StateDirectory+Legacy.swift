#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import GRDB
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The file-based store of earlier layouts (one JSON record per app, pending and secret files):
/// read for `status` over an unmigrated directory, imported into the database once, and
/// records that cannot be read moved aside.
extension StateDirectory {
    // MARK: - JSON records of the file-based store

    /// A JSON record as found on disk.
    enum Found<Record> {
        case missing
        case record(Record)
        case unreadable(String)
    }

    func findJSON<Record: Decodable>(_ type: Record.Type, at target: String) -> Found<Record> {
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

    func inspectJSON(appID: String) -> Inspection {
        var found = Inspection()
        switch findJSON(AppState.self, at: statePath(appID)) {
        case .missing: break
        case .record(let record): found.state = record
        case .unreadable(let reason): found.problems.append("state record \(statePath(appID)): \(reason)")
        }
        for candidate in [
            secretPath(appID), "\(legacyPendingPath)/\(Self.fileName(for: appID)).json",
            "\(legacySecretsPath)/\(Self.fileName(for: appID)).json",
        ] {
            switch findJSON(CurrentSecret.self, at: candidate) {
            case .missing: continue
            case .record(let secret):
                if secret.version >= (found.secretVersion ?? 0) {
                    found.secretVersion = secret.version
                    found.secret = secret
                }
            case .unreadable(let reason): found.problems.append("secret record \(candidate): \(reason)")
            }
        }
        return found
    }

    func moveAside(_ target: String, appID: String, now: Date, reason: String) -> CorruptRecord {
        let stamp = Int64(now.timeIntervalSince1970 * 1000)
        let name = FilePath(target).lastComponent?.string ?? "record"
        let destination = "\(corruptPath)/\(name).\(stamp)"
        _ = rename(target, destination)
        return CorruptRecord(appID: appID, movedTo: destination, reason: reason)
    }

    /// A database SQLite cannot read (SQLITE_NOTADB, SQLITE_CORRUPT) goes to `corrupt/` with
    /// its WAL, and a new one is started: every app then reads GenAuth's current secret.
    func moveDatabaseAside(now: Date, reason: String) -> CorruptRecord {
        let stamp = Int64(now.timeIntervalSince1970 * 1000)
        var movedTo = ""
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let source = databasePath + suffix
            let destination = "\(corruptPath)/\(StateDatabase.fileName)\(suffix).\(stamp)"
            if rename(source, destination) == 0 && suffix.isEmpty { movedTo = destination }
        }
        syncDirectory(corruptPath)
        syncDirectory(path)
        return CorruptRecord(appID: "*", movedTo: movedTo, reason: reason)
    }

    /// Imports `apps/*.json` and `current/*.json` into the database in one transaction (of a
    /// row and a file for one app, the higher version wins; a tie keeps the row), then
    /// removes the files and their directories. A crash in between imports again: the same
    /// outcome. Unreadable files are moved to `corrupt/` and returned.
    func importJSONRecords(now: Date) throws(StateDirectoryError) -> [CorruptRecord] {
        let stateFiles = (try? DirectoryListing.entries(atPath: appsPath))?.map(\.name) ?? []
        let secretFiles = (try? DirectoryListing.entries(atPath: secretsPath))?.map(\.name) ?? []
        if stateFiles.isEmpty && secretFiles.isEmpty {
            _ = rmdir(appsPath)
            _ = rmdir(secretsPath)
            return []
        }
        var corrupt: [CorruptRecord] = []
        var imported: [String] = []
        /// The records of one directory's `*.json` files; unreadable ones are moved aside.
        func read<Record: Decodable>(_ type: Record.Type, _ names: [String], in directory: String) -> [Record] {
            var records: [Record] = []
            for name in names where name.hasSuffix(".json") && !name.hasPrefix(".") {
                let file = "\(directory)/\(name)"
                switch findJSON(type, at: file) {
                case .missing: continue
                case .record(let record):
                    records.append(record)
                    imported.append(file)
                case .unreadable(let reason):
                    corrupt.append(moveAside(file, appID: String(name.dropLast(5)), now: now, reason: reason))
                }
            }
            return records
        }
        let states = read(AppState.self, stateFiles, in: appsPath)
        let secrets = read(CurrentSecret.self, secretFiles, in: secretsPath)
        let database = try database().database
        do {
            try database.pool.write { db in
                // The higher version wins, for app records as for secrets: after a downgrade
                // and an upgrade the JSON records are newer than the database's rows.
                for state in states {
                    if let existing = try? AppState.fetchOne(db, key: state.appID), existing.version >= state.version { continue }
                    try state.insert(db, onConflict: .replace)
                }
                for secret in secrets {
                    if let existing = try? CurrentSecret.fetchOne(db, key: secret.appID), existing.version >= secret.version { continue }
                    try secret.insert(db, onConflict: .replace)
                }
            }
        } catch let error as DatabaseError {
            throw StateDatabase.error(error, path: databasePath, message: "cannot import the JSON records of the file-based store")
        } catch {
            throw StateDirectoryError(
                .recordWriteFailed, path: databasePath, message: "cannot import the JSON records of the file-based store: \(error)")
        }
        for file in imported { _ = unlink(file) }
        for directory in [appsPath, secretsPath] {
            writer.sweepStaleTemporaries(inDirectory: directory)
            _ = rmdir(directory)
        }
        syncDirectory(path)
        return corrupt
    }

    // MARK: - Migration

    /// In the oldest file-based layout a received secret lived in `pending/<app>.json` only until every output
    /// held it. Such a record is an unfinished rollout: it becomes the current secret unless a
    /// newer one is already there. Each move is a rename within the state directory, then
    /// both directories are synced.
    func migrateLegacyPending() throws(StateDirectoryError) {
        guard let entries = try? DirectoryListing.entries(atPath: legacyPendingPath) else { return }
        _ = mkdir(secretsPath, 0o700)  // imported into the database right after, then removed
        for name in entries.map(\.name) where name.hasSuffix(".json") && !name.hasPrefix(".") {
            let source = "\(legacyPendingPath)/\(name)"
            let destination = "\(secretsPath)/\(name)"
            guard case .record(let legacy) = findJSON(CurrentSecret.self, at: source) else { continue }
            if case .record(let existing) = findJSON(CurrentSecret.self, at: destination), existing.version >= legacy.version {
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

    /// A later file-based layout kept current secrets in `secrets/`, the default drop
    /// directory's name. A file there moves to `current/` only if it is a current-secret
    /// record of the app its name says, a regular file of ours with mode 0600: outputs in
    /// the drop directory are never touched.
    func migrateLegacySecrets() throws(StateDirectoryError) {
        guard let entries = try? DirectoryListing.entries(atPath: legacySecretsPath) else { return }
        _ = mkdir(secretsPath, 0o700)  // imported into the database right after, then removed
        var moved = false
        for name in entries.map(\.name) where name.hasSuffix(".json") && !name.hasPrefix(".") {
            let source = "\(legacySecretsPath)/\(name)"
            var status = stat()
            guard lstat(source, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG, status.st_uid == ProcessUser.effectiveUID,
                status.st_mode & 0o777 == 0o600,
                case .record(let legacy) = findJSON(CurrentSecret.self, at: source),
                Self.fileName(for: legacy.appID) + ".json" == name
            else { continue }
            let destination = "\(secretsPath)/\(name)"
            if case .record(let existing) = findJSON(CurrentSecret.self, at: destination), existing.version >= legacy.version {
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

    func syncDirectory(_ directory: String) {
        guard let descriptor = try? FileDescriptor.open(FilePath(directory), .readOnly, options: [.directory, .closeOnExec])
        else { return }
        _ = fsync(descriptor.rawValue)
        try? descriptor.close()
    }
}
