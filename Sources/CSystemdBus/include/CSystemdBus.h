#ifndef CSYSTEMDBUS_H
#define CSYSTEMDBUS_H

#include <stdint.h>
#include <stddef.h>

/// What systemd said about one unit: the result of a job the caller queued (if any) and the
/// unit's state afterwards, read from org.freedesktop.systemd1.Unit/.Service properties.
/// Timestamps are CLOCK_REALTIME microseconds as systemd reports them, 0 when unknown.
typedef struct {
    /// "loaded", "not-found", "bad-setting", "error", "masked"; "" if not read.
    char load_state[32];
    /// "active", "reloading", "inactive", "failed", "activating", "deactivating".
    char active_state[32];
    char sub_state[32];
    /// The unit's primary name (org.freedesktop.systemd1.Unit.Id): differs from the name asked
    /// about when that is an alias; systemd asks polkit about this one.
    char id[256];
    /// The queued job's result from JobRemoved: "done", "canceled", "timeout", "failed",
    /// "dependency", "skipped"; "" when no job was queued (KillUnit) or none was seen.
    char job_result[32];
    /// ExecMainStartTimestamp: when the main process was last started.
    uint64_t main_start_usec;
    /// The start of the last ExecReload= command run, 0 if none ran since the unit started.
    uint64_t reload_start_usec;
    /// The exit status of that command (CLD_EXITED status), -1 when unknown.
    int32_t reload_status;
    /// Whether the unit defines ExecReload= (org.freedesktop.systemd1.Unit.CanReload).
    int32_t can_reload;
    /// The D-Bus error of a refused or failed call ("org.freedesktop.DBus.Error.AccessDenied",
    /// "org.freedesktop.systemd1.NoSuchUnit", ...) and its message, "" when none.
    char error_name[128];
    char error_message[256];
} sr_unit_report;

/// Every D-Bus call made is bounded by `timeout_usec` (sd_bus_set_method_call_timeout).
/// Queues `method` ("ReloadOrTryRestartUnit", "TryRestartUnit", "ReloadUnit", "RestartUnit")
/// for `unit` with mode "replace" on the system bus, waits for the job's JobRemoved signal
/// (at most `timeout_usec`), then reads the unit's state into `report`. With method
/// "KillUnit", sends `signal` to the unit's main process instead (no job).
/// Returns 0 when the call was made and answered (check report->job_result), or a negative
/// errno: -ETIMEDOUT when no JobRemoved arrived in time, -EACCES/-EPERM when refused
/// (report->error_* say why), others when the bus could not be reached.
int sr_unit_notify(const char *unit, const char *method, int signal, uint64_t timeout_usec, sr_unit_report *report);

/// Reads a unit's state (read-only; LoadUnit is not called, GetUnit and then the unit's
/// properties by its object path computed by sd_bus_path_encode). Returns 0 or a negative errno.
int sr_unit_inspect(const char *unit, sr_unit_report *report);

#endif
