/// Failure mapping: what a GenAuth error, an output write or a state directory write that
/// failed means for an app's transitions (its kind decides the backoff and whether it is
/// retried), with the journal fields its log entry carries.
extension AppTransitions.Failure {
    /// A GenAuth call's failure; its kind follows the error's one classification
    /// (`GenAuthError+Classification`), 403 included.
    init(genAuth error: GenAuthError) {
        var fields: [String: String] = ["error": error.description, "classification": error.classification.rawValue]
        if let status = error.httpStatus { fields["http_status"] = "\(status)" }
        if let status = error.apiStatusCode { fields["api_status_code"] = "\(status)" }
        if let code = error.apiCode { fields["api_code"] = "\(code)" }
        if let requestId = error.requestId { fields["request_id"] = requestId }
        self.init(error.failureKind, error.description, retryAfter: error.retryAfter, fields: fields)
    }

    /// Outputs not written: the first failure names the path and the error.
    init(_ report: WriteReport, version: Int) {
        let first = report.failed.first
        var fields: [String: String] = ["event": "output_write_failed", "version": "\(version)"]
        if let first {
            fields["target_path"] = first.path
            fields["error"] = first.error.map { "\($0)" } ?? ""
            if let errno = first.error?.errno { fields["errno"] = OutputError.name(of: errno) }
        }
        let detail = first.map { "\($0.error.map { "\($0)" } ?? $0.path)" } ?? "unknown"
        self.init(.local, "\(RotationEngine.count(report.failed.count, "output")) not written: \(detail)", fields: fields)
    }

    /// The state directory did not take a write: a local failure.
    init(journal error: StateDirectoryError) {
        self.init(.local, error.description, fields: Self.fields(of: error))
    }

    /// The journal fields of a state directory failure.
    static func fields(of error: StateDirectoryError) -> [String: String] {
        var fields = ["event": "state_write_failed", "target_path": error.path, "error": error.description]
        if let name = error.errnoName { fields["errno"] = name }
        return fields
    }
}
