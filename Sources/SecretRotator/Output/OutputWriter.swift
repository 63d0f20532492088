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
