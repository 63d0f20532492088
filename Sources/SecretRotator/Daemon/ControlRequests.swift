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

    public init(stateDirectory: StateDirectory) {
        directory = stateDirectory.requestsPath
    }

    public func submit(appID: String, kind: Kind) throws(OutputError) {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw OutputError(.directoryUnavailable, path: directory, errno: Errno(rawValue: errno), reason: "cannot create the request directory")
        }
        let path = "\(directory)/\(StateDirectory.fileName(for: appID)).\(kind.rawValue)"
        let writer = AtomicFileWriter()
        // Writes no longer sweep, and nothing else sweeps this directory: the submitter clears
        // the temp files of a CLI killed mid-submit. The directory holds a handful of entries.
        writer.sweepStaleTemporaries(inDirectory: directory)
        try writer.write(Array(appID.utf8), to: path, options: AtomicWriteOptions())
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
