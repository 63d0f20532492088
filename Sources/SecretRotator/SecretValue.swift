/// A secret (access key secret, application secret, token) that will not print itself.
///
/// String interpolation, `print`, `dump` and logging metadata all go through `description`
/// or the mirror, so a secret that reaches a log line by accident shows up as `<redacted>`
/// instead of leaking (Architecture, invariant 5). Code that must hand the real value to a
/// file or an HTTP body asks for `exposed` explicitly, which keeps those places greppable.
public struct SecretValue: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    public let exposed: String

    public init(_ exposed: String) {
        self.exposed = exposed
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "SecretValue(<redacted>)" }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}
