import SecretRotator

// Interim entry point of the output branch: at merge the real `@main` CLI replaces this file
// and registers WriteLoopCommand as a subcommand, keeping `secret-rotator _write-loop ...`.
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == WriteLoopCommand.configuration.commandName {
    WriteLoopCommand.main(Array(CommandLine.arguments.dropFirst(2)))
} else {
    print(SecretRotatorVersion.current)
}
