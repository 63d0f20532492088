import CLinuxFiles

/// The process's standard output as a person watching a pipe expects it.
public enum StandardOutput {
    /// Line-buffered even when stdout is a pipe or a file: stdio buffers 4 KiB there by
    /// default, so `demo | tee log` showed nothing until it ended (C11 7.21.3 "Files").
    public static func lineBuffered() {
        sr_line_buffer_stdout()
    }
}
