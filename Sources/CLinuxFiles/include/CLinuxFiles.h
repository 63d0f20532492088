#ifndef SECRET_ROTATOR_CLINUXFILES_H
#define SECRET_ROTATOR_CLINUXFILES_H

/* statx(2) is declared by glibc only with _GNU_SOURCE, which Swift's Glibc module does not
   set; this shim is compiled with it. Attributes of `name` inside `dirfd` (an empty name:
   dirfd itself), not following a final symlink. Returns 0, or -1 with errno set. */
int sr_statx_attributes(int dirfd, const char *name, unsigned long long *attributes, unsigned long long *mask);

/* STATX_ATTR_IMMUTABLE, STATX_ATTR_APPEND, STATX_ATTR_MOUNT_ROOT (linux/stat.h). */
extern const unsigned long long sr_statx_attr_immutable;
extern const unsigned long long sr_statx_attr_append;
extern const unsigned long long sr_statx_attr_mount_root;

/// Installs `hook` as the Swift runtime's `swift_task_enqueueGlobal_hook` if none is set.
int sr_install_enqueue_global_hook(void *hook);

/* stdout line-buffered even when it is a pipe (`demo | tee`, a CI log): the C `stdout` global
   is not concurrency-safe to touch from Swift 6. */
void sr_line_buffer_stdout(void);

#endif
