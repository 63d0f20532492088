import Testing

extension Tag {
    /// Suites whose code walks C memory (directory records, stat buffers, sockets, the SQLite
    /// and notify C APIs) or drives the engine over it: CI runs them a second time under
    /// AddressSanitizer, selected by this tag (`.ci/run`), so a renamed suite is not dropped.
    @Tag static var addressSanitizer: Self
}
