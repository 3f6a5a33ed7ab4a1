// The floor for issue 12's parked->woken target: what waking a parked process costs on this machine with no
// JavaScript runtime in the way. Two processes (fork) play ping-pong with one byte of news; before every round
// trip the pinging side sleeps `gap` (2 ms by default), so both sides are parked in the kernel each time, as a
// plugin and its host are between calls that come a few milliseconds apart. One sample is the time from the ping
// to the pinging side having the pong. Mechanisms, run in rotating order within each round so that load drifting
// over the run hits all of them alike:
//
//   futex             each side blocks in FUTEX_WAIT on its own shared word; the other bumps it and FUTEX_WAKEs.
//                     One hop: what a blocking park (issue 12, design a) can reach.
//   futex_thread      the pinged side sleeps on the futex in a second thread, which hands over to the main thread
//                     through an eventfd the main thread waits on with epoll: the shape of the waiter thread
//                     (futex -> thread -> the event loop's own wake-up). Two hops; the pinging side waits on a
//                     plain futex, as a host that blocks for its answer would.
//   eventfd           each side epoll_waits on its own eventfd; the other writes 8 bytes to it.
//   pipe              the same with a pipe per direction and one byte.
//   unix              the same over a connected unix stream socket pair: what a unix-socket transport, or the
//                     socket doorbell, pays at the least.
//
// Build and run: make bench-wake-floor [BENCH_ARGS="--samples=500 --rounds=3 --gap-us=2000 --json"]
// (zig cc, the pinned zig). Linux only.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/** Samples per mechanism per round is capped so the sample buffer can be static. */
#define samples_max 100000
/** A parked side gives up after this long: a peer that died must not hang the benchmark. */
#define wait_timeout_ms 5000

enum mechanism { m_futex, m_futex_thread, m_eventfd, m_pipe, m_unix, m_count };
static const char *const names[m_count] = {"futex", "futex_thread", "eventfd", "pipe", "unix"};

static void die(const char *what) {
  perror(what);
  exit(2);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(long us) {
  struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// ------------------------------------------------------------------ futex (shared, not private)

static long futex(uint32_t *word, int op, uint32_t value, const struct timespec *timeout) {
  return syscall(SYS_futex, word, op, value, timeout, NULL, 0);
}

/** Blocks until *word differs from `seen`; returns the new value. */
static uint32_t futex_wait_change(uint32_t *word, uint32_t seen) {
  const struct timespec timeout = {.tv_sec = wait_timeout_ms / 1000, .tv_nsec = 0};
  for (;;) {
    uint32_t value = __atomic_load_n(word, __ATOMIC_ACQUIRE);
    if (value != seen) return value;
    if (futex(word, FUTEX_WAIT, seen, &timeout) != 0 && errno == ETIMEDOUT) {
      fprintf(stderr, "wake_floor: peer did not answer within %d ms\n", wait_timeout_ms);
      exit(2);
    }
  }
}

static void futex_bump(uint32_t *word) {
  __atomic_add_fetch(word, 1, __ATOMIC_RELEASE);
  futex(word, FUTEX_WAKE, 1, NULL);
}

/** Shared between the two processes (MAP_SHARED before fork). */
struct shared {
  uint32_t to_child;
  uint8_t pad0[60];
  uint32_t to_parent;
  uint8_t pad1[60];
};

// ------------------------------------------------------------------ file descriptors + epoll

/** One direction's readable end and the other direction's writable end, from one side's point of view. */
struct fds {
  int read_fd;
  int write_fd;
  int epoll;
  size_t bytes; // 8 for an eventfd, 1 otherwise
};

static int epoll_for(int fd) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  struct epoll_event event = {.events = EPOLLIN, .data = {.fd = fd}};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &event) != 0) die("epoll_ctl");
  return ep;
}

static void fd_wait(const struct fds *f) {
  struct epoll_event event;
  for (;;) {
    int n = epoll_wait(f->epoll, &event, 1, wait_timeout_ms);
    if (n == 1) break;
    if (n == 0) {
      fprintf(stderr, "wake_floor: peer did not answer within %d ms\n", wait_timeout_ms);
      exit(2);
    }
    if (errno != EINTR) die("epoll_wait");
  }
  uint64_t buffer = 0;
  if (read(f->read_fd, &buffer, f->bytes) != (ssize_t)f->bytes) die("read");
}

static void fd_ring(const struct fds *f) {
  uint64_t one = 1;
  if (write(f->write_fd, &one, f->bytes) != (ssize_t)f->bytes) die("write");
}

// ------------------------------------------------------------------ futex_thread: futex -> thread -> eventfd -> epoll

struct relay {
  struct shared *shared;
  int eventfd;
  int count;
};

static void *relay_main(void *arg) {
  struct relay *relay = arg;
  uint32_t seen = __atomic_load_n(&relay->shared->to_child, __ATOMIC_ACQUIRE);
  uint64_t one = 1;
  for (int i = 0; i < relay->count; i++) {
    seen = futex_wait_change(&relay->shared->to_child, seen);
    if (write(relay->eventfd, &one, 8) != 8) die("write eventfd");
  }
  return NULL;
}

// ------------------------------------------------------------------ one mechanism, one round

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double percentile_us(uint64_t *sorted, int n, double q) {
  int index = (int)(q * (n - 1) + 0.5);
  return sorted[index] / 1000.0;
}

static uint64_t samples[samples_max];

/** Runs `count` parked round trips over `m` between this process and a forked child; fills samples[]. */
static void measure(enum mechanism m, int count, long gap_us) {
  struct shared *shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) die("mmap");
  memset(shared, 0, sizeof *shared);
  int a[2] = {-1, -1}, b[2] = {-1, -1}; // a: parent -> child, b: child -> parent (pipe: [read, write])
  struct fds parent_fds = {0}, child_fds = {0};
  switch (m) {
    case m_eventfd:
      a[0] = a[1] = eventfd(0, EFD_CLOEXEC);
      b[0] = b[1] = eventfd(0, EFD_CLOEXEC);
      if (a[0] < 0 || b[0] < 0) die("eventfd");
      parent_fds = (struct fds){.read_fd = b[0], .write_fd = a[1], .bytes = 8};
      child_fds = (struct fds){.read_fd = a[0], .write_fd = b[1], .bytes = 8};
      break;
    case m_pipe:
      if (pipe2(a, O_CLOEXEC) != 0 || pipe2(b, O_CLOEXEC) != 0) die("pipe2");
      parent_fds = (struct fds){.read_fd = b[0], .write_fd = a[1], .bytes = 1};
      child_fds = (struct fds){.read_fd = a[0], .write_fd = b[1], .bytes = 1};
      break;
    case m_unix:
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) != 0) die("socketpair");
      parent_fds = (struct fds){.read_fd = a[0], .write_fd = a[0], .bytes = 1};
      child_fds = (struct fds){.read_fd = a[1], .write_fd = a[1], .bytes = 1};
      break;
    default:
      break;
  }
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    if (m == m_futex) {
      uint32_t seen = 0;
      for (int i = 0; i < count; i++) {
        seen = futex_wait_change(&shared->to_child, seen);
        futex_bump(&shared->to_parent);
      }
    } else if (m == m_futex_thread) {
      struct relay relay = {.shared = shared, .eventfd = eventfd(0, EFD_CLOEXEC), .count = count};
      if (relay.eventfd < 0) die("eventfd");
      struct fds loop = {.read_fd = relay.eventfd, .epoll = epoll_for(relay.eventfd), .bytes = 8};
      pthread_t thread;
      if (pthread_create(&thread, NULL, relay_main, &relay) != 0) die("pthread_create");
      for (int i = 0; i < count; i++) {
        fd_wait(&loop);
        futex_bump(&shared->to_parent);
      }
      pthread_join(thread, NULL);
    } else {
      child_fds.epoll = epoll_for(child_fds.read_fd);
      for (int i = 0; i < count; i++) {
        fd_wait(&child_fds);
        fd_ring(&child_fds);
      }
    }
    _exit(0);
  }
  if (m == m_eventfd || m == m_pipe || m == m_unix) parent_fds.epoll = epoll_for(parent_fds.read_fd);
  uint32_t seen = 0;
  for (int i = 0; i < count; i++) {
    sleep_us(gap_us);
    uint64_t started = now_ns();
    if (m == m_futex || m == m_futex_thread) {
      futex_bump(&shared->to_child);
      seen = futex_wait_change(&shared->to_parent, seen);
    } else {
      fd_ring(&parent_fds);
      fd_wait(&parent_fds);
    }
    samples[i] = now_ns() - started;
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "wake_floor: the %s child failed\n", names[m]);
    exit(2);
  }
  for (int i = 0; i < 2; i++) {
    if (a[i] >= 0 && !(i == 1 && a[1] == a[0])) close(a[i]);
    if (b[i] >= 0 && !(i == 1 && b[1] == b[0])) close(b[i]);
  }
  if (parent_fds.epoll > 0) close(parent_fds.epoll);
  munmap(shared, sizeof *shared);
}

static long arg_long(int argc, char **argv, const char *prefix, long fallback, long min, long max) {
  size_t length = strlen(prefix);
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], prefix, length) != 0) continue;
    char *end = NULL;
    long value = strtol(argv[i] + length, &end, 10);
    if (*end != '\0' || value < min || value > max) {
      fprintf(stderr, "wake_floor: %s takes an integer from %ld to %ld, got \"%s\"\n", prefix, min, max,
              argv[i] + length);
      exit(2);
    }
    return value;
  }
  return fallback;
}

int main(int argc, char **argv) {
  int json = 0;
  for (int i = 1; i < argc; i++) json |= strcmp(argv[i], "--json") == 0;
  int count = (int)arg_long(argc, argv, "--samples=", 500, 10, samples_max);
  int rounds = (int)arg_long(argc, argv, "--rounds=", 3, 1, 100);
  long gap_us = arg_long(argc, argv, "--gap-us=", 2000, 0, 1000000);
  // The first tenth warms caches and the scheduler's view of both processes; it is not reported.
  int warmup = count / 10;
  if (!json) printf("%-8s %-14s %9s %9s %9s %9s   (parked->woken round trip, us; gap %ld us, %d samples)\n", "round",
                    "mechanism", "p50", "p90", "p99", "max", gap_us, count);
  for (int round = 0; round < rounds; round++) {
    for (int k = 0; k < m_count; k++) {
      enum mechanism m = (enum mechanism)((k + round) % m_count);
      measure(m, warmup + count, gap_us);
      uint64_t *kept = samples + warmup;
      qsort(kept, count, sizeof *kept, compare_u64);
      double p50 = percentile_us(kept, count, 0.5), p90 = percentile_us(kept, count, 0.9);
      double p99 = percentile_us(kept, count, 0.99), max = kept[count - 1] / 1000.0;
      if (json) {
        printf("{\"bench\":\"wake.floor\",\"transport\":\"%s\",\"round\":%d,\"samples\":%d,\"gap_us\":%ld,"
               "\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f}\n",
               names[m], round + 1, count, gap_us, p50, p90, p99, max);
      } else {
        printf("%-8d %-14s %9.1f %9.1f %9.1f %9.1f\n", round + 1, names[m], p50, p90, p99, max);
      }
      fflush(stdout);
    }
  }
  return 0;
}
