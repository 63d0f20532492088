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
        let path = "\(directory)/\(StateDirectory.fileName(for: appID)).\(kind.rawValue)"
        let writer = AtomicFileWriter()
        // Writes no longer sweep, and nothing else sweeps this directory: the submitter clears
        // the temp files of a CLI killed mid-submit. The directory holds a handful of entries.
        writer.sweepStaleTemporaries(inDirectory: directory)
        let options = AtomicWriteOptions(
            owner: stateOwner.map { UserID(rawValue: $0.uid) }, group: stateOwner.map { GroupID(rawValue: $0.gid) },
            trustedOwner: stateOwner.map { UserID(rawValue: $0.uid) })
        try writer.write(Array(appID.utf8), to: path, options: options)
    }

    /// Takes every waiting request (and removes its file).
    ///
    /// A request file is `<escaped app id>.<kind>`; hidden names (temp files of a submit in
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
            let contents = try? SmallFile.read(path, limit: 512, followSymlinks: false)
            unlink(path)
            if let contents {
                requests.append((String(decoding: contents.bytes, as: UTF8.self), kind))
            }
        }
        return requests
    }
}
