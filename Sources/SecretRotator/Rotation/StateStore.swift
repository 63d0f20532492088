#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Durable per-app state in the state directory:
///
///     <state>/apps/<app>.json      AppState, no secrets
///     <state>/pending/<app>.json   PendingSecret, 0600, only while a new secret is being rolled out
///     <state>/corrupt/             unreadable records, moved aside with a timestamp
///
/// Every file is replaced with `AtomicFileWriter`, so a crash leaves the old or the new record.
public struct StateStore: Sendable {
    public let directory: String
    private let writer = AtomicFileWriter()

    public init(directory: String) {
        self.directory = directory
    }

    /// A record that could not be decoded, reported instead of silently starting over.
    public struct CorruptRecord: Sendable, Equatable {
        public let appID: String
        public let movedTo: String
        public let reason: String
    }

    /// Creates the state directory and its subdirectories, private to the daemon (0700).
    public func prepare() throws(OutputError) {
        for path in [directory, "\(directory)/apps", "\(directory)/pending", "\(directory)/corrupt"] {
            if mkdir(path, 0o700) != 0 && errno != EEXIST {
                throw OutputError(
                    .directoryUnavailable, path: path, errno: Errno(rawValue: errno), reason: "cannot create the state directory")
            }
        }
    }

    public func loadState(appID: String, now: Date) -> (state: AppState?, corrupt: CorruptRecord?) {
        load(AppState.self, at: statePath(appID), appID: appID, now: now)
    }

    public func saveState(_ state: AppState) throws(OutputError) {
        try save(state, to: statePath(state.appID))
    }

    public func loadPending(appID: String, now: Date) -> (pending: PendingSecret?, corrupt: CorruptRecord?) {
        let result = load(PendingSecret.self, at: pendingPath(appID), appID: appID, now: now)
        return (result.state, result.corrupt)
    }

    public func savePending(_ pending: PendingSecret) throws(OutputError) {
        try save(pending, to: pendingPath(pending.appID))
    }

    public func removePending(appID: String) throws(OutputError) {
        let path = pendingPath(appID)
        if unlink(path) != 0 && errno != ENOENT {
            throw OutputError(.renameFailed, path: path, errno: Errno(rawValue: errno), reason: "cannot remove the pending record")
        }
        syncDirectory("\(directory)/pending")
    }

    /// App ids are printable ASCII but may contain characters awkward in file names; anything
    /// outside a safe set is hex-escaped so every id maps to exactly one file.
    static func fileName(for appID: String) -> String {
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

    func statePath(_ appID: String) -> String { "\(directory)/apps/\(Self.fileName(for: appID)).json" }
    func pendingPath(_ appID: String) -> String { "\(directory)/pending/\(Self.fileName(for: appID)).json" }

    private func save(_ value: some Encodable, to path: String) throws(OutputError) {
        let bytes: [UInt8]
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.dateEncodingStrategy = .millisecondsSince1970
            bytes = Array(try encoder.encode(value))
        } catch {
            throw OutputError(.invalidSpec, path: path, reason: "cannot encode the state record")
        }
        try writer.write(bytes, to: path, options: AtomicWriteOptions(mode: [.ownerRead, .ownerWrite]))
    }

    /// A record as found on disk.
    private enum Found<Record> {
        case missing
        case record(Record)
        case unreadable(String)
    }

    private func load<Record: Decodable>(_ type: Record.Type, at path: String, appID: String, now: Date)
        -> (state: Record?, corrupt: CorruptRecord?)
    {
        switch find(type, at: path) {
        case .missing: return (nil, nil)
        case .record(let record): return (record, nil)
        case .unreadable(let reason): return (nil, moveAside(path, appID: appID, now: now, reason: reason))
        }
    }

    private func find<Record: Decodable>(_ type: Record.Type, at path: String) -> Found<Record> {
        let contents: [UInt8]
        do {
            contents = try SmallFile.read(path, limit: 1 << 20, followSymlinks: false).bytes
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
    public func inspect(appID: String) -> (state: AppState?, pendingVersion: Int?, problems: [String]) {
        var problems: [String] = []
        var state: AppState?
        switch find(AppState.self, at: statePath(appID)) {
        case .missing: break
        case .record(let record): state = record
        case .unreadable(let reason): problems.append("state record \(statePath(appID)): \(reason)")
        }
        var pendingVersion: Int?
        switch find(PendingSecret.self, at: pendingPath(appID)) {
        case .missing: break
        case .record(let pending): pendingVersion = pending.version
        case .unreadable(let reason): problems.append("pending record \(pendingPath(appID)): \(reason)")
        }
        return (state, pendingVersion, problems)
    }

    private func moveAside(_ path: String, appID: String, now: Date, reason: String) -> CorruptRecord {
        let stamp = Int64(now.timeIntervalSince1970 * 1000)
        let name = FilePath(path).lastComponent?.string ?? "record"
        let destination = "\(directory)/corrupt/\(name).\(stamp)"
        _ = rename(path, destination)
        return CorruptRecord(appID: appID, movedTo: destination, reason: reason)
    }

    private func syncDirectory(_ path: String) {
        guard let descriptor = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.directory, .closeOnExec]) else {
            return
        }
        _ = fsync(descriptor.rawValue)
        try? descriptor.close()
    }
}
