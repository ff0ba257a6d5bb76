/*
 * pause: the process that holds a pod sandbox's namespaces. It sleeps until
 * SIGINT or SIGTERM, and reaps any child that gets re-parented to it (it is
 * PID 1 of the pod when the pod shares its PID namespace). Built static by
 * scripts/harness/pause.sh for the sandbox image.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  (void)sig;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static void handle(int sig, void (*fn)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = fn;
  sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, NULL) < 0) {
    fprintf(stderr, "pause: install handler for signal %d: %s\n", sig, strerror(errno));
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    puts("pause (podnet harness)");
    return 0;
  }
  if (getpid() != 1) {
    fprintf(stderr, "pause: warning: not running as PID 1\n");
  }
  handle(SIGINT, on_term);
  handle(SIGTERM, on_term);
  handle(SIGCHLD, on_child);
  for (;;) {
    pause();
  }
}
