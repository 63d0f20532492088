/// What one `AtomicFileWriter.sweepStaleTemporaries` run did in one directory.
public struct TemporarySweep: Sendable, Equatable {
    /// The absolute path of the directory swept.
    public let directory: String
    /// Names (not paths) of the stale temp files removed, in removal order. A temp name holds
    /// the target's file name and random hex, never content, so it is safe to log.
    public let removed: [String]
    /// Why the sweep could not start (directory unreadable or unsafe) or stopped listing
    /// early; nil when every entry was looked at. `path` is the directory. A missing
    /// directory is not an error: there is nothing to sweep.
    public let error: OutputError?

    public init(directory: String, removed: [String], error: OutputError?) {
        self.directory = directory
        self.removed = removed
        self.error = error
    }
}
