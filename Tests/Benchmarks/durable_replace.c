/*
 * The physical reference for the benchmarks (Tests/README.md, Benchmarks): how many durable atomic replaces
 * per second the file system of DIR allows with THREADS concurrent writers.
 *
 *   durable_replace DIR SECONDS [THREADS]      (THREADS defaults to 8)
 *
 * Each thread owns one target file DIR/.bench-target-<i> and loops: create a temp file
 * (O_CREAT|O_EXCL|O_CLOEXEC, 0600), write 33 bytes (a 32-hex secret and a newline), fsync it,
 * rename it over the target, fsync DIR. This is the least a rotation must do per output:
 * a reader sees the old content or the new, and both survive a power cut. Prints
 * "replaces=N seconds=S per_second=R" on stdout; leaves nothing behind in DIR.
 *
 * Built at run time by Tests/Benchmarks/run.sh with `cc -O2 -pthread`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *dir;
static int dirfd_shared = -1;
static atomic_int stop;
static atomic_long total;
static atomic_int failed;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *writer(void *arg) {
    long index = (long)arg;
    char target[4096], temp[4096], content[34];
    snprintf(target, sizeof target, "%s/.bench-target-%ld", dir, index);
    snprintf(temp, sizeof temp, "%s/.bench-temp-%ld", dir, index);
    unsigned long counter = 0;
    while (!atomic_load(&stop)) {
        snprintf(content, sizeof content, "%016lx%016lx\n", (unsigned long)index, counter++);
        int fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) { perror("open temp"); atomic_store(&failed, 1); break; }
        if (write(fd, content, 33) != 33) { perror("write"); atomic_store(&failed, 1); close(fd); break; }
        if (fsync(fd) != 0) { perror("fsync file"); atomic_store(&failed, 1); close(fd); break; }
        close(fd);
        if (rename(temp, target) != 0) { perror("rename"); atomic_store(&failed, 1); break; }
        if (fsync(dirfd_shared) != 0) { perror("fsync dir"); atomic_store(&failed, 1); break; }
        atomic_fetch_add(&total, 1);
    }
    unlink(temp);
    unlink(target);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR SECONDS [THREADS]\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    double seconds = atof(argv[2]);
    int threads = argc > 3 ? atoi(argv[3]) : 8;
    if (seconds <= 0 || threads < 1 || threads > 256) {
        fprintf(stderr, "bad SECONDS or THREADS\n");
        return 2;
    }
    dirfd_shared = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd_shared < 0) { perror(dir); return 1; }
    pthread_t ids[256];
    double start = now();
    for (long i = 0; i < threads; i++) {
        if (pthread_create(&ids[i], NULL, writer, (void *)i) != 0) { perror("pthread_create"); return 1; }
    }
    struct timespec pause = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {}
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
    double elapsed = now() - start;
    long count = atomic_load(&total);
    printf("replaces=%ld seconds=%.3f per_second=%.1f threads=%d\n", count, elapsed, count / elapsed, threads);
    return atomic_load(&failed) ? 1 : 0;
}
