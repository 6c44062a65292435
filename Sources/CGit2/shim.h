#ifndef SHIPYARD_CGIT2_SHIM_H
#define SHIPYARD_CGIT2_SHIM_H
#include <git2.h>

/* git_libgit2_opts is variadic, which Swift cannot call: one fixed-arity wrapper per option. */
static inline int shipyard_git_set_cache_max_size(long bytes) {
    return git_libgit2_opts(GIT_OPT_SET_CACHE_MAX_SIZE, (ssize_t)bytes);
}

/* libgit2's check that a local repository belongs to the current user (safe.directory). */
static inline int shipyard_git_set_owner_validation(int enabled) {
    return git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, enabled);
}

static inline int shipyard_git_enable_caching(int enabled) {
    return git_libgit2_opts(GIT_OPT_ENABLE_CACHING, enabled);
}

/* Keep a user's ~/.gitconfig, /etc/gitconfig and XDG config out of the daemon's behaviour. */
static inline int shipyard_git_isolate_config(const char *empty_dir) {
    int rc = 0;
    rc |= git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, empty_dir);
    rc |= git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_XDG, empty_dir);
    rc |= git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_SYSTEM, empty_dir);
    rc |= git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_PROGRAMDATA, empty_dir);
    return rc;
}
#endif
