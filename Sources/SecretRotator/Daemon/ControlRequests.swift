import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How `rotate` and `fetch` reach a running daemon without a second writer: the CLI drops a
/// request file into `<state>/requests/` and sends SIGUSR1; the daemon takes the requests and
/// performs them in its own engine, which already serializes work per app.
public struct ControlRequests: Sendable {
    public enum Kind: String, Sendable {
        case rotate
        case fetch
    }

    public let directory: String
    private let stateDirectory: String

    public init(stateDirectory: StateDirectory) {
        directory = stateDirectory.requestsPath
        self.stateDirectory = stateDirectory.path
    }

    /// Leaves a request for the daemon. From root for a daemon that runs as its own user (the
    /// package: `secret-rotator` owns the state directory), the directory and the file are
    /// given to the state directory's owner, so the daemon can read and remove them; nothing
    /// root-owned is left behind when that fails.
    ///
    /// - Throws: `OutputError` naming the request directory or file.
    public func submit(appID: String, kind: Kind) throws(OutputError) {
        try submit(appIDs: [appID], kind: kind)
    }

    /// Leaves one request per app, as few files as the size bound allows: one app's request is
    /// `<escaped app id>.<kind>` (a second one for the same app replaces it); more apps share
    /// files of at most `batchBytes` bytes, one app id per line (ids are printable ASCII
    /// without spaces, at most 128 bytes: `ValueRules.identifierProblem`). So `rotate --all`
    /// over 10,000 apps writes and syncs three files, not 10,000, each into a directory that
    /// would otherwise hold (and list, to sweep) thousands of entries.
    ///
    /// - Throws: `OutputError` naming the request directory or file; files written before a
    ///   failure stay and are taken by the daemon.
    public func submit(appIDs: [String], kind: Kind) throws(OutputError) {
        guard !appIDs.isEmpty else { return }
        let stateOwner = try prepareDirectory()
        let writer = AtomicFileWriter()
        // Writes no longer sweep, and nothing else sweeps this directory: the submitter clears
        // the temp files of a CLI killed mid-submit, once per submit.
        writer.sweepStaleTemporaries(inDirectory: directory)
        let options = AtomicWriteOptions(
            owner: stateOwner.map { UserID(rawValue: $0.uid) }, group: stateOwner.map { GroupID(rawValue: $0.gid) },
            trustedOwner: stateOwner.map { UserID(rawValue: $0.uid) })
        if appIDs.count == 1 {
            let path = "\(directory)/\(StateDirectory.fileName(for: appIDs[0])).\(kind.rawValue)"
            try writer.write(Array(appIDs[0].utf8), to: path, options: options)
            return
        }
        var batch: [UInt8] = []
        var index = 0
        func flush() throws(OutputError) {
            guard !batch.isEmpty else { return }
            // The process id and a counter: unique among submitters, which run one at a time per process.
            let path = "\(directory)/batch-\(getpid())-\(index).\(kind.rawValue)"
            try writer.write(batch, to: path, options: options)
            batch.removeAll(keepingCapacity: true)
            index += 1
        }
        for appID in appIDs {
            if batch.count + appID.utf8.count + 1 > Self.batchBytes { try flush() }
            batch.append(contentsOf: appID.utf8)
            batch.append(UInt8(ascii: "\n"))
        }
        try flush()
    }

    /// The largest request file a submit writes, in bytes: about 2,000 app ids of 128 bytes.
    static let batchBytes = 256 * 1024

    /// Creates `<state>/requests/` (0700) if needed; from root for a daemon running as its own
    /// user, gives it to the state directory's owner and returns that owner.
    private func prepareDirectory() throws(OutputError) -> (uid: uid_t, gid: gid_t)? {
        var owner = stat()
        let stateOwner: (uid: uid_t, gid: gid_t)? =
            stat(stateDirectory, &owner) == 0 && owner.st_uid != geteuid() && geteuid() == 0 ? (owner.st_uid, owner.st_gid) : nil
        if mkdir(directory, 0o700) == 0 {
            if let stateOwner, chown(directory, stateOwner.uid, stateOwner.gid) != 0 {
                let failure = Errno(rawValue: errno)
                rmdir(directory)
                throw OutputError(.directoryUnavailable, path: directory, errno: failure, reason: "cannot give the request directory to the daemon's user")
            }
        } else if errno != EEXIST {
            throw OutputError(.directoryUnavailable, path: directory, errno: Errno(rawValue: errno), reason: "cannot create the request directory")
        } else if let stateOwner {
            // Left root-owned by an earlier version: the daemon could not read it.
            var found = stat()
            if lstat(directory, &found) == 0, found.st_mode & S_IFMT == S_IFDIR, found.st_uid == 0 {
                _ = chown(directory, stateOwner.uid, stateOwner.gid)
            }
        }
        return stateOwner
    }

    /// Takes every waiting request (and removes its file).
    ///
    /// A request file is `<name>.<kind>` holding one app id per line (a file from before
    /// batches holds one id without a newline); hidden names (temp files of a submit in
    /// flight) and anything else are left alone. If reading the directory fails midway, the
    /// requests taken so far are returned and the rest stay for the next drain.
    public func drain() -> [(appID: String, kind: Kind)] {
        guard var listing = try? DirectoryListing(path: directory) else { return [] }
        var requests: [(String, Kind)] = []
        while let entry = try? listing.next() {
            let name = entry.name
            guard entry.isExactName, !name.hasPrefix("."), let dot = name.lastIndex(of: "."),
                let kind = Kind(rawValue: String(name[name.index(after: dot)...]))
            else { continue }
            let path = "\(directory)/\(name)"
            let contents = try? SmallFile.read(path, limit: Self.batchBytes, followSymlinks: false)
            unlink(path)
            for line in contents?.bytes.split(separator: UInt8(ascii: "\n")) ?? [] {
                requests.append((String(decoding: line, as: UTF8.self), kind))
            }
        }
        return requests
    }
}
