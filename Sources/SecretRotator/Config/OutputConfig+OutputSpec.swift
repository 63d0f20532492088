import SystemPackage

extension OutputConfig {
    /// The writer's view of this output. The caller passes the template text, read when the
    /// output is written, so an edited template is picked up without a restart.
    public func outputSpec(template: String?) -> OutputSpec {
        OutputSpec(
            path: path, format: format, envKey: envKey, template: template,
            mode: FilePermissions(rawValue: CModeT(mode.rawValue)), owner: owner.map { UserID(rawValue: $0.id) },
            group: group.map { GroupID(rawValue: $0.id) }, trailingNewline: trailingNewline,
            allowWorldReadable: allowWorldReadable, allowUnsafeDirectory: allowUnsafeDirectory,
            createParent: inDropDirectory ? DirectoryCreation(group: group.map { GroupID(rawValue: $0.id) }) : nil)
    }
}
