import Foundation
import Testing

/// What the host lets a test do, for `.enabled(if:_:)` traits: a test that needs more is
/// reported as skipped, with the reason, never passed silently. CI runs as root, so there
/// every one of them runs.
enum HostCapabilities {
    /// Root and util-linux's setpriv(1): a test can run a command as another user.
    static let canRunAsAnotherUser = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
    static let runAsAnotherUserReason: Comment = "needs root and /usr/bin/setpriv to run a command as another user"
}
