// TEMPORARY until the fs-safety branch's OutputWriter.inspect lands.
#if canImport(Glibc)
import Glibc
#endif

public struct OutputDrift: Sendable, Equatable {
    public var cause: String
    public var changesContent: Bool { cause == "missing" || cause == "content" || cause == "not_regular_file" }
}

extension OutputWriter {
    public func inspect(_ document: SecretDocument, at spec: OutputSpec) -> OutputDrift? {
        guard let expected = try? OutputRenderer.render(document, for: spec) else { return OutputDrift(cause: "content") }
        var st = stat()
        if lstat(spec.path, &st) != 0 { return OutputDrift(cause: "missing") }
        if (st.st_mode & S_IFMT) != S_IFREG { return OutputDrift(cause: "not_regular_file") }
        guard let found = try? SmallFile.read(spec.path, limit: 1 << 20, followSymlinks: false).bytes, found == expected else {
            return OutputDrift(cause: "content")
        }
        if st.st_mode & 0o7777 != spec.mode.rawValue { return OutputDrift(cause: "mode") }
        if let owner = spec.owner, st.st_uid != owner.rawValue { return OutputDrift(cause: "owner") }
        if let group = spec.group, st.st_gid != group.rawValue { return OutputDrift(cause: "group") }
        return nil
    }
}
