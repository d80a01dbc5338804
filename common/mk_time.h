/*
 * mk_time.h - clocks. Wall time (unix ms) for deadlines that cross
 * processes; monotonic time for measuring durations within one.
 */
#ifndef MK_TIME_H
#define MK_TIME_H

#include <stdint.h>

int64_t mk_now_ms(void);  /* CLOCK_REALTIME, unix milliseconds */
int64_t mk_mono_ms(void); /* CLOCK_MONOTONIC milliseconds */
void mk_sleep_ms(int64_t ms);

#endif
