import CLinuxFiles
import NIOCore
import NIOPosix

/// Runs Swift Concurrency's global jobs on NIO's singleton event loops, so the idle daemon
/// never wakes libdispatch's default root queue, whose first worker starts a 1 Hz workqueue
/// monitor that wakes the process every second for good (swift-corelibs-libdispatch,
/// `src/event/workqueue.c`).
///
/// NIO's own `unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()` is
/// tried first; it finds the runtime's hook with `dlsym`, which fails in the .deb's
/// static-stdlib build (the hook is a hidden symbol inside the executable). The fallback sets
/// the same hook through the C shim, which links to it by name, with the same hook body as NIO.
public enum EventLoopExecutorTakeover {
    private typealias EnqueueGlobalHook = @convention(thin) (UnownedJob, @convention(thin) (UnownedJob) -> Void) -> Void

    /// Call once, first thing in `main`. Returns whether jobs now run on NIO's event loops.
    @discardableResult
    public static func install() -> Bool {
        if NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() { return true }
        return withUnsafeTemporaryAllocation(of: EnqueueGlobalHook.self, capacity: 1) { storage -> Bool in
            guard let slot = storage.baseAddress else { return false }
            slot.initialize(to: { job, _ in
                MultiThreadedEventLoopGroup.singleton.any().enqueue(ExecutorJob(job))
            })
            // A thin function is one code pointer: the hook's value.
            return slot.withMemoryRebound(to: UnsafeMutableRawPointer?.self, capacity: 1) { pointer in
                sr_install_enqueue_global_hook(pointer.pointee) == 1
            }
        }
    }
}
