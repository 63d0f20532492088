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
        try AtomicFileWriter().write(Array(appID.utf8), to: path, options: AtomicWriteOptions())
    }

    /// Takes every waiting request (and removes its file).
    public func drain() -> [(appID: String, kind: Kind)] {
        guard let stream = opendir(directory) else { return [] }
        defer { closedir(stream) }
        var requests: [(String, Kind)] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard !name.hasPrefix("."), let dot = name.lastIndex(of: "."),
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
