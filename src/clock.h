/* The one clock and the one sleep. Pure C. */
#ifndef KIMICTL_CLOCK_H
#define KIMICTL_CLOCK_H

long long clock_now_ms(void);    /* monotonic: for deadlines and durations */
long long clock_real_ms(void);   /* milliseconds since the epoch: for file times and users */
double clock_real_s(void);       /* seconds since the epoch, to the microsecond: for timing */
void sleep_ms(long ms);          /* the whole time, even when a signal interrupts it */

#endif
