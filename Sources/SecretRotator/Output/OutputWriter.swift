#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SystemPackage

/// Writes one secret document to all outputs of an app.
///
/// Every output is rendered from the same document in memory, and one failing output does
/// not stop the others: the engine retries just the failed ones (`WriteReport.failedSpecs`)
/// with the same document instead of rotating again.
public struct OutputWriter: Sendable {
    let fileWriter: AtomicFileWriter

    public init() {
        self.fileWriter = AtomicFileWriter()
    }

    init(fileWriter: AtomicFileWriter) {
        self.fileWriter = fileWriter
    }

    public func write(_ document: SecretDocument, to outputs: [OutputSpec]) -> WriteReport {
        let results = outputs.map { spec in
            WriteReport.Result(spec: spec, outcome: write(document, to: spec))
        }
        return WriteReport(appId: document.appId, version: document.version, results: results)
    }

    /// Compares the output `spec` describes with what `write(document, to: [spec])` would
    /// leave on disk, for a level-triggered engine that rewrites only what drifted. Reads only.
    ///
    /// The expected bytes come from `OutputRenderer`, exactly as a write renders them; mode,
    /// owner and group are compared with what the writer would set (see `OutputDrift`).
    ///
    /// - Returns: nil when the file is exactly what a write would leave, else the first
    ///   difference found. Neither the result nor anything logged holds the secret.
    /// - Parameter writer: whose write to compare with when the spec names no owner or group:
    ///   nil for this process (the daemon inspecting its own outputs); `status`, run as root,
    ///   passes the daemon's account.
    public func inspect(_ document: SecretDocument, at spec: OutputSpec, writer: WriterIdentity? = nil) -> OutputDrift? {
        let problems = spec.problems()
        guard problems.isEmpty else {
            return .invalidOutput(OutputError(.invalidSpec, path: spec.path, reason: problems.joined(separator: "; ")))
        }
        let expected: [UInt8]
        do {
            expected = try OutputRenderer.render(document, for: spec)
        } catch {
            return .invalidOutput(error)
        }
        return fileWriter.inspect(expected, at: spec.path, options: spec.writeOptions, writer: writer)
    }

    /// Whether a write of a secret to `spec` could succeed now, checked without a secret and
    /// without changing what readers see (`AtomicFileWriter.probe`): the spec is valid, its
    /// template renders (with a placeholder secret of the same shape as GenAuth's), and a
    /// temp file can be created, written, chowned and removed in its directory.
    ///
    /// - Returns: nil when the output is writable, else the error its write would meet.
    public func preflight(_ spec: OutputSpec, appId: String, appName: String) -> OutputError? {
        let problems = spec.problems()
        guard problems.isEmpty else {
            return OutputError(.invalidSpec, path: spec.path, reason: problems.joined(separator: "; "))
        }
        // 32 hex digits, as GenAuth's secrets are: the renderer's checks see a realistic value.
        let placeholder = SecretDocument(
            secret: SecretValue(String(repeating: "0", count: 32)), appId: appId, appName: appName, version: 1,
            rotatedAt: Date(timeIntervalSince1970: 0))
        do {
            let bytes = try OutputRenderer.render(placeholder, for: spec)
            try fileWriter.probe(bytes, at: spec.path, options: spec.writeOptions)
            return nil
        } catch {
            return error
        }
    }

    /// Removes the temp files crashed writers left next to these outputs: each parent
    /// directory once, however many outputs it holds (`AtomicFileWriter.sweepStaleTemporaries`).
    /// The engine runs this at start-up and after a config reload; writes themselves only
    /// sweep after a failure.
    ///
    /// A temp file is removed when it is ours (effective uid), or when it belongs to an output
    /// in that directory and is owned by that output's `owner`; and only when no live writer
    /// holds its lock. A directory is swept even when unsafe (writable by group or others) if
    /// one of its outputs sets `allowUnsafeDirectory`, as that output's write would have.
    ///
    /// - Returns: one `TemporarySweep` per directory, in the order the outputs first name it.
    ///   Outputs whose path has no parent directory (invalid specs) are skipped.
    @discardableResult
    public func sweepStaleTemporaries(for outputs: [OutputSpec]) -> [TemporarySweep] {
        var order: [String] = []
        var byDirectory: [String: (owners: [String: UserID], allowUnsafe: Bool)] = [:]
        for spec in outputs {
            guard let (parent, name) = AtomicFileWriter.split(spec.path) else { continue }
            if byDirectory[parent] == nil {
                order.append(parent)
                byDirectory[parent] = ([:], false)
            }
            if let owner = spec.owner { byDirectory[parent]?.owners[name] = owner }
            if spec.allowUnsafeDirectory { byDirectory[parent]?.allowUnsafe = true }
        }
        return order.map { directory in
            let settings = byDirectory[directory] ?? ([:], false)
            return fileWriter.sweepStaleTemporaries(
                inDirectory: directory, allowedOwners: settings.owners, allowUnsafeDirectory: settings.allowUnsafe)
        }
    }

    private func write(_ document: SecretDocument, to spec: OutputSpec) -> WriteReport.Result.Outcome {
        let problems = spec.problems()
        guard problems.isEmpty else {
            return .failed(OutputError(.invalidSpec, path: spec.path, reason: problems.joined(separator: "; ")))
        }
        do {
            let bytes = try OutputRenderer.render(document, for: spec)
            try fileWriter.write(bytes, to: spec.path, options: spec.writeOptions)
            return .written
        } catch {
            return .failed(error)
        }
    }
}

/// The account a write runs as: the owner and group a file gets when the output names none.
public struct WriterIdentity: Sendable, Equatable {
    public var userID: UserID
    public var groupID: GroupID

    public init(userID: UserID, groupID: GroupID) {
        self.userID = userID
        self.groupID = groupID
    }
}
