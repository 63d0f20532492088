import NIOPosix

extension AtomicFileWriter {
    /// `write(_:to:options:)` on one of `pool`'s threads: an fsync'd replace blocks for as long
    /// as the disk takes, so an actor or an event loop must not run it on its own executor.
    ///
    /// - Returns: the write's outcome, or nil when it never ran (the pool is shut down, as at
    ///   process exit, or the task was cancelled first).
    func write(_ bytes: [UInt8], to path: String, options: AtomicWriteOptions, on pool: NIOThreadPool) async -> Result<Void, OutputError>? {
        try? await pool.runIfActive { () -> Result<Void, OutputError> in
            do throws(OutputError) {
                try self.write(bytes, to: path, options: options)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
    }
}
