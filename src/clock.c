/* Clocks in milliseconds, and a sleep that resumes after a signal handler ran. */
#include "clock.h"

#include <errno.h>
#include <time.h>

static long long ms_of(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long clock_now_ms(void) { return ms_of(CLOCK_MONOTONIC); }
long long clock_real_ms(void) { return ms_of(CLOCK_REALTIME); }

double clock_real_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_ms(long ms) {
  int saved = errno;   /* callers sleep between a failure and its report */
  struct timespec ts = { (time_t)(ms / 1000), (ms % 1000) * 1000000L };
  while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
  errno = saved;
}
