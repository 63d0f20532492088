// The daemon's only D-Bus code: queue a reload or restart of a consumer unit, wait for the
// job's result and read the unit's state back. Written against libsystemd's sd-bus in C
// because its message API is variadic (sd_bus_call_method, sd_bus_message_read), which Swift
// cannot call. Each call opens its own connection and closes it: sd-bus objects belong to one
// thread, and a rotation is rare enough that a connection per notification costs nothing.
// No secret ever reaches this file: only unit names, method names and signal numbers.
#include "CSystemdBus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-bus.h>

#define SR_DEST "org.freedesktop.systemd1"
#define SR_PATH "/org/freedesktop/systemd1"
#define SR_MANAGER "org.freedesktop.systemd1.Manager"

static void copy_string(char *to, size_t size, const char *from) {
    if (size == 0) return;
    if (from == NULL) from = "";
    strncpy(to, from, size - 1);
    to[size - 1] = '\0';
}

static void keep_error(sr_unit_report *report, const sd_bus_error *error, int r) {
    if (sd_bus_error_is_set(error)) {
        copy_string(report->error_name, sizeof report->error_name, error->name);
        copy_string(report->error_message, sizeof report->error_message, error->message);
    } else if (r < 0 && report->error_message[0] == '\0') {
        copy_string(report->error_message, sizeof report->error_message, strerror(-r));
    }
}

static uint64_t monotonic_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/// Reads the unit's properties into `report` (best effort for the optional ones).
static int read_unit(sd_bus *bus, const char *unit, sr_unit_report *report) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    char *path = NULL;
    // The object path of a unit that is not loaded yet makes systemd load it (as
    // `systemctl show` does), so LoadState answers "not-found" for a unit that does not exist.
    int r = sd_bus_path_encode(SR_PATH "/unit", unit, &path);
    if (r < 0) return r;
    const char *names[4] = {"LoadState", "ActiveState", "SubState", "Id"};
    char *targets[4] = {report->load_state, report->active_state, report->sub_state, report->id};
    size_t sizes[4] = {sizeof report->load_state, sizeof report->active_state, sizeof report->sub_state, sizeof report->id};
    for (int i = 0; i < 4; i++) {
        char *value = NULL;
        r = sd_bus_get_property_string(bus, SR_DEST, path, "org.freedesktop.systemd1.Unit", names[i], &error, &value);
        if (r < 0) {
            keep_error(report, &error, r);
            sd_bus_error_free(&error);
            free(path);
            return r;
        }
        copy_string(targets[i], sizes[i], value);
        free(value);
    }
    int can_reload = 0;
    {
        sd_bus_message *reply = NULL;
        r = sd_bus_get_property(bus, SR_DEST, path, "org.freedesktop.systemd1.Unit", "CanReload", &error, &reply, "b");
        // sd_bus_get_property leaves the reply inside the variant.
        if (r >= 0 && sd_bus_message_read(reply, "b", &can_reload) >= 0) report->can_reload = can_reload ? 1 : 0;
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
    }
    if (strcmp(report->load_state, "loaded") == 0) {
        uint64_t start = 0;
        if (sd_bus_get_property_trivial(bus, SR_DEST, path, "org.freedesktop.systemd1.Service", "ExecMainStartTimestamp", &error, 't', &start) >= 0)
            report->main_start_usec = start;
        sd_bus_error_free(&error);
        // ExecReload: a(sasbttttuii): path, argv, ignore_failure, start (realtime, monotonic),
        // exit (realtime, monotonic), pid, code, status. The last entry ran last.
        sd_bus_message *reply = NULL;
        r = sd_bus_get_property(bus, SR_DEST, path, "org.freedesktop.systemd1.Service", "ExecReload", &error, &reply, "a(sasbttttuii)");
        if (r >= 0 && sd_bus_message_enter_container(reply, 'a', "(sasbttttuii)") >= 0) {
            for (;;) {
                const char *exec = NULL;
                int ignore = 0;
                uint64_t start_rt = 0, start_mono = 0, exit_rt = 0, exit_mono = 0;
                uint32_t pid = 0;
                int32_t code = 0, status = 0;
                if (sd_bus_message_enter_container(reply, 'r', "sasbttttuii") <= 0) break;
                if (sd_bus_message_read(reply, "s", &exec) < 0) break;
                if (sd_bus_message_skip(reply, "as") < 0) break;
                if (sd_bus_message_read(reply, "bttttuii", &ignore, &start_rt, &start_mono, &exit_rt, &exit_mono, &pid, &code, &status) < 0)
                    break;
                if (sd_bus_message_exit_container(reply) < 0) break;
                if (start_rt >= report->reload_start_usec && start_rt > 0) {
                    report->reload_start_usec = start_rt;
                    // CLD_EXITED is 1: only then is `status` an exit status.
                    report->reload_status = exit_rt > 0 && code == 1 ? status : -1;
                }
            }
        }
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
    }
    free(path);
    return 0;
}

int sr_unit_inspect(const char *unit, sr_unit_report *report) {
    memset(report, 0, sizeof *report);
    report->reload_status = -1;
    sd_bus *bus = NULL;
    int r = sd_bus_open_system(&bus);
    if (r < 0) {
        copy_string(report->error_message, sizeof report->error_message, strerror(-r));
        return r;
    }
    r = read_unit(bus, unit, report);
    sd_bus_flush_close_unref(bus);
    return r;
}

int sr_unit_notify(const char *unit, const char *method, int signal, uint64_t timeout_usec, sr_unit_report *report) {
    memset(report, 0, sizeof *report);
    report->reload_status = -1;
    sd_bus *bus = NULL;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = NULL;
    sd_bus_slot *match = NULL;
    const char *job = NULL;
    char job_path[256] = "";
    int r = sd_bus_open_system(&bus);
    if (r < 0) {
        copy_string(report->error_message, sizeof report->error_message, strerror(-r));
        return r;
    }
    // Every call on this connection is bounded by the caller's timeout, not sd-bus's default 25 s.
    sd_bus_set_method_call_timeout(bus, timeout_usec > 0 ? timeout_usec : 1);
    uint64_t deadline = monotonic_usec() + timeout_usec;
    if (strcmp(method, "KillUnit") == 0) {
        r = sd_bus_call_method(bus, SR_DEST, SR_PATH, SR_MANAGER, "KillUnit", &error, NULL, "ssi", unit, "main", signal);
        if (r < 0) {
            // Keep why, and read the unit anyway: "No main process to kill" is a stopped unit.
            keep_error(report, &error, r);
            sd_bus_error_free(&error);
            int refused = r;
            (void)read_unit(bus, unit, report);
            sd_bus_flush_close_unref(bus);
            return refused;
        }
        goto inspect;
    }
    // The match goes in before the job is queued, so its JobRemoved cannot be missed; the
    // match itself is installed synchronously (sd_bus_add_match waits for the bus's answer).
    r = sd_bus_add_match(bus, &match,
        "type='signal',sender='" SR_DEST "',path='" SR_PATH "',interface='" SR_MANAGER "',member='JobRemoved'", NULL, NULL);
    if (r < 0) goto failed;
    // Without a subscriber systemd emits no job signals; Subscribe is unprivileged.
    r = sd_bus_call_method(bus, SR_DEST, SR_PATH, SR_MANAGER, "Subscribe", &error, NULL, "");
    if (r < 0) goto failed;
    r = sd_bus_call_method(bus, SR_DEST, SR_PATH, SR_MANAGER, method, &error, &reply, "ss", unit, "replace");
    if (r < 0) goto failed;
    r = sd_bus_message_read(reply, "o", &job);
    if (r < 0) goto failed;
    copy_string(job_path, sizeof job_path, job);
    sd_bus_message_unref(reply);
    reply = NULL;
    for (;;) {
        sd_bus_message *message = NULL;
        r = sd_bus_process(bus, &message);
        if (r < 0) goto failed;
        if (message != NULL) {
            if (sd_bus_message_is_signal(message, SR_MANAGER, "JobRemoved")) {
                uint32_t id = 0;
                const char *path = NULL, *name = NULL, *result = NULL;
                if (sd_bus_message_read(message, "uoss", &id, &path, &name, &result) >= 0 && path != NULL &&
                    strcmp(path, job_path) == 0) {
                    copy_string(report->job_result, sizeof report->job_result, result);
                    sd_bus_message_unref(message);
                    break;
                }
            }
            sd_bus_message_unref(message);
        }
        if (r > 0) continue;  // more may be queued: process before waiting
        uint64_t now = monotonic_usec();
        if (now >= deadline) {
            r = -ETIMEDOUT;
            copy_string(report->error_message, sizeof report->error_message, "no result for the job in time");
            goto failed;
        }
        r = sd_bus_wait(bus, deadline - now);
        if (r < 0) goto failed;
    }
inspect:
    sd_bus_slot_unref(match);
    match = NULL;
    r = read_unit(bus, unit, report);
    sd_bus_flush_close_unref(bus);
    return r;
failed:
    keep_error(report, &error, r);
    sd_bus_error_free(&error);
    sd_bus_message_unref(reply);
    sd_bus_slot_unref(match);
    sd_bus_flush_close_unref(bus);
    return r;
}
