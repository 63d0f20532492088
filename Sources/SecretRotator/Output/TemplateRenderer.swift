import Mustache

/// Renders a `template` output with swift-mustache, emitting every value verbatim.
enum TemplateRenderer {
    /// Mustache HTML-escapes `{{x}}` by default, which would turn `&` in a secret into `&amp;`.
    /// The TEXT content type turns escaping off. As a standalone line the pragma is removed
    /// together with its newline, so the user's text starts exactly as written.
    private static let verbatimPragma = "{{%CONTENT_TYPE:TEXT}}\n"

    static func render(_ templateText: String, document: SecretDocument, path: String) throws(OutputError) -> String {
        let problems = TemplateValidator.problems(in: templateText)
        guard problems.isEmpty else {
            throw OutputError(.invalidSpec, path: path, reason: "invalid template: " + problems.joined(separator: "; "))
        }
        let template: MustacheTemplate
        do {
            template = try MustacheTemplate(string: verbatimPragma + templateText)
        } catch {
            throw OutputError(.invalidSpec, path: path, reason: "invalid template: \(error)")
        }
        let values: [String: String] = [
            "secret": document.secret.exposed,
            "app_id": document.appId,
            "app_name": document.appName,
            "rotated_at": document.rotatedAtISO8601,
            "version": String(document.version),
        ]
        return template.render(values)
    }
}
