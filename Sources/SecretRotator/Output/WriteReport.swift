/// What one `OutputWriter.write` did, output by output.
public struct WriteReport: Sendable {
    public struct Result: Sendable {
        public enum Outcome: Sendable {
            /// The file now holds the document's version, durably.
            case written
            /// The file was not changed by this write (it holds whatever it held before),
            /// unless `error.targetReplaced`, in which case it holds the new version but its
            /// durability is not confirmed.
            case failed(OutputError)
        }

        public let spec: OutputSpec
        public let outcome: Outcome

        public var path: String { spec.path }

        public var error: OutputError? {
            if case .failed(let error) = outcome { return error }
            return nil
        }
    }

    public let appId: String
    /// The version every `.written` output now holds.
    public let version: Int
    /// One result per output, in the order given.
    public let results: [Result]

    public var allWritten: Bool { results.allSatisfy { $0.error == nil } }
    public var written: [Result] { results.filter { $0.error == nil } }
    public var failed: [Result] { results.filter { $0.error != nil } }
    /// Pass these back to `OutputWriter.write` to retry only what failed, with the same document.
    public var failedSpecs: [OutputSpec] { failed.map(\.spec) }

    /// The version each path visibly holds after this write, where known. Paths that failed
    /// before their rename are absent: they hold what they held before.
    public var versionsByPath: [String: Int] {
        var versions: [String: Int] = [:]
        for result in results where result.error == nil || result.error?.targetReplaced == true {
            versions[result.path] = version
        }
        return versions
    }
}
