/// Why a single config value could not be read. The config loader adds file, line and key path.
public struct ValueSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
