#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include "CLinuxFiles.h"

const unsigned long long sr_statx_attr_immutable = STATX_ATTR_IMMUTABLE;
const unsigned long long sr_statx_attr_append = STATX_ATTR_APPEND;
const unsigned long long sr_statx_attr_mount_root = STATX_ATTR_MOUNT_ROOT;

int sr_statx_attributes(int dirfd, const char *name, unsigned long long *attributes, unsigned long long *mask) {
    struct statx status;
    int flags = AT_SYMLINK_NOFOLLOW | (name[0] == '\0' ? AT_EMPTY_PATH : 0);
    if (statx(dirfd, name, flags, STATX_BASIC_STATS, &status) != 0) return -1;
    *attributes = status.stx_attributes;
    *mask = status.stx_attributes_mask;
    return 0;
}

/* The Swift runtime's global-executor hook (swift/Runtime/Concurrency.h). NIO finds it with
 * dlsym, which fails in the .deb's static-stdlib build, where the symbol is hidden inside the
 * executable; linking to it by name works in both builds. Returns 1 if installed (the hook
 * was unset), 0 if someone else's hook was already there. */
extern void *swift_task_enqueueGlobal_hook;

int sr_install_enqueue_global_hook(void *hook) {
    void *expected = 0;
    return __atomic_compare_exchange_n(&swift_task_enqueueGlobal_hook, &expected, hook, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}

#include <stdio.h>

void sr_line_buffer_stdout(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
}
