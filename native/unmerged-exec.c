/*
 * ksm-unmerged-exec STATUS_FD FILE ARGV0 [ARG...]
 *
 * Clears PR_SET_MEMORY_MERGE for this process, then execvp(FILE) with
 * argv [ARGV0, ARG...]. spawnUnmerged() starts children through it: the
 * merge-any flag survives fork and exec (Linux 6.7+), and switching it off
 * in the parent would unmerge all of the parent's memory, so it is cleared
 * here, in a process that has nothing merged yet.
 *
 * STATUS_FD (or -1) is a pipe to the parent, closed on a successful exec.
 * On failure "<errno> <step>\n" is written to it and the exit status is 127,
 * so the parent can report the failure the way child_process.spawn does.
 * It fails closed: if the flag cannot be cleared, nothing is executed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

static void fail(int status_fd, int err, const char* step, const char* file) {
  if (status_fd >= 0) {
    char line[64];
    int n = snprintf(line, sizeof(line), "%d %s\n", err, step);
    if (n > 0) {
      ssize_t ignored = write(status_fd, line, (size_t)n);
      (void)ignored;
    }
  } else {
    /* No parent listening: say it where a shell would. */
    fprintf(stderr, "ksm-unmerged-exec: %s %s: %s\n", step, file, strerror(err));
  }
  _exit(127);
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: ksm-unmerged-exec STATUS_FD FILE ARGV0 [ARG...]\n");
    return 127;
  }
  char* end = NULL;
  errno = 0;
  long status_fd = strtol(argv[1], &end, 10);
  if (errno != 0 || end == argv[1] || *end != '\0' || status_fd < -1 ||
      status_fd > 1024 * 1024) {
    fprintf(stderr, "ksm-unmerged-exec: bad STATUS_FD %s\n", argv[1]);
    return 127;
  }
  const char* file = argv[2];
  int fd = (int)status_fd;
  if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) fd = -1;

  /* EINVAL: a kernel before 6.4, where the flag does not exist and so
   * cannot be set. Any other failure leaves it possibly on: do not exec. */
  if (prctl(PR_SET_MEMORY_MERGE, 0UL, 0UL, 0UL, 0UL) != 0 && errno != EINVAL) {
    fail(fd, errno, "prctl", file);
  }

  execvp(file, argv + 3);  /* argv[3] is ARGV0, then the arguments */
  fail(fd, errno, "exec", file);
  return 127;
}
