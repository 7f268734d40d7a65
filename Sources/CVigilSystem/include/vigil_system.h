/* GNU extensions of glibc that Swift's Glibc module does not show (they need _GNU_SOURCE). */
#ifndef VIGIL_SYSTEM_H
#define VIGIL_SYSTEM_H

#include <spawn.h>

/* pipe2(fds, O_CLOEXEC): both ends close on exec, atomically (no other thread's spawn inherits them). */
int vigil_pipe_cloexec(int fds[2]);
/* posix_spawn_file_actions_addchdir_np (glibc 2.29+): the child starts in `path`. */
int vigil_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path);

/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34+): the child closes every descriptor from `from`
   up, so it never inherits the daemon's sockets (a task outliving the daemon would hold its port). */
int vigil_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from);

#endif
