#ifndef SHIPYARD_SUPPORT_H
#define SHIPYARD_SUPPORT_H
#include <spawn.h>
#include <sys/types.h>

/* Spawns `path` with argv/envp in a new process group, a clean signal mask and default signal
 * dispositions, standard input from `in_fd` (or /dev/null when it is -1), standard output and
 * error to `out_fd`, and `directory` (when not NULL) as its working directory.
 * Returns 0 and sets *pid, or an errno value. */
int shipyard_spawn_task(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                        const char *directory, int in_fd, int out_fd);

/// As shipyard_spawn_task, with standard output and standard error apart.
int shipyard_spawn_task_split(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                              const char *directory, int in_fd, int out_fd, int err_fd);
/* rename(2) that fails with EEXIST instead of replacing `to` (renameat2 RENAME_NOREPLACE).
 * Returns 0, or -1 with errno set. */
int shipyard_rename_noreplace(const char *from, const char *to);
/* pipe2(fds, O_CLOEXEC): both ends close-on-exec from the start. Returns 0 or -1 (errno). */
int shipyard_pipe_cloexec(int fds[2]);
/// Names the calling thread (at most 15 bytes are kept), as top -H and /proc show it.
int shipyard_set_thread_name(const char *name);

/* Asks the kernel to SIGKILL the calling process when the thread that spawned it exits, and
 * checks that its parent is still `parent` (it may have died before the request). Returns 0, or
 * -1 when the parent is gone already. */
int shipyard_die_with_parent(pid_t parent);

/* The layout of Linux's struct ucred (SO_PEERCRED), which Swift's Glibc module does not show. */
struct shipyard_ucred {
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

#endif
