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
