/*
 * mk_time.c - wall and monotonic clocks in milliseconds.
 */
#include <errno.h>
#include <time.h>

#include "mk_time.h"

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mk_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int64_t mk_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

void mk_sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}
