import ArgumentParser
import SecretRotator
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Test helper: replaces a file with alternating values through `AtomicFileWriter`, so the
/// crash test can SIGKILL a real writer process at random moments. The values arrive on argv,
/// so this must only ever see test data, never a real secret.
///
/// Its own executable target: it used to be a hidden `_write-loop` command of the
/// shipped `secret-rotator`; packaging/build-deb.sh never packs this one.
@main
struct WriteLoopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret-rotator-write-loop",
        abstract: "Test helper: atomically rewrite a file with alternating values."
    )

    @Option(help: "Absolute path of the file to replace.")
    var path: String

    @Option(name: .customLong("value"), help: "A value to write; repeat to alternate between several.")
    var values: [String]

    @Option(help: "Number of writes; 0 writes until killed.")
    var count: Int = 0

    @Option(help: "Final file mode, octal.")
    var mode: String = "0600"

    @Flag(help: "Print \"ready\" after the first completed write.")
    var ready = false

    @Flag(help: "Accept a parent directory writable by others.")
    var allowUnsafeDirectory = false

    func validate() throws {
        guard !values.isEmpty else { throw ValidationError("give at least one --value") }
        guard UInt16(mode, radix: 8) != nil else { throw ValidationError("--mode must be octal, like 0640") }
    }

    func run() throws {
        let options = AtomicWriteOptions(
            mode: FilePermissions(rawValue: mode_t(UInt16(mode, radix: 8) ?? 0o600)),
            allowUnsafeDirectory: allowUnsafeDirectory
        )
        let writer = AtomicFileWriter()
        let contents = values.map { Array($0.utf8) }
        var written = 0
        while count == 0 || written < count {
            do {
                try writer.write(contents[written % contents.count], to: path, options: options)
            } catch {
                _ = try? FileDescriptor.standardError.writeAll(Array("write failed: \(error)\n".utf8))
                throw ExitCode.failure
            }
            written += 1
            if written == 1 && ready {
                // Straight to the descriptor: stdout's buffer would hold it back from the pipe.
                _ = try? FileDescriptor.standardOutput.writeAll(Array("ready\n".utf8))
            }
        }
    }
}
