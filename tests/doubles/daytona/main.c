/*
 * main.c - daytona-double: the command line of the Daytona sandbox API
 * test double (see dt_double.h). Wiring only.
 *
 *   daytona-double [--listen 127.0.0.1:0] [--api-key KEY] [--start-delay-ms N]
 *                  [--stop-delay-ms N] [--minute-ms N] [--root DIR]
 *                  [--bwrap PATH] [--snapshots NAME,...]
 *
 * Prints exactly one line, "listening on <port>", on stdout once it serves,
 * then serves until SIGTERM or SIGINT, kills every sandbox process, removes
 * its directory and exits 0. Diagnostics go to stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "dt_double.h"
#include "mk_log.h"
#include "mk_svc.h"
#include "mt_serve.h"

#define DEFAULT_SNAPSHOTS "daytona-small,daytona-medium,daytona-large"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: daytona-double [--listen HOST:PORT] [--api-key KEY] [--start-delay-ms N]\n"
	        "                      [--stop-delay-ms N] [--minute-ms N] [--root DIR]\n"
	        "                      [--bwrap PATH] [--snapshots NAME,...]\n"
	        "  --listen          address to serve on (default 127.0.0.1:0: a free port)\n"
	        "  --api-key         the only bearer key accepted (default: any)\n"
	        "  --start-delay-ms  how long creating/starting takes (default 300)\n"
	        "  --stop-delay-ms   how long stopping, archiving, destroying take (default 200)\n"
	        "  --minute-ms       the length of an auto-stop/archive/delete minute (default "
	        "60000)\n"
	        "  --root            where sandboxes keep their files (default: a new directory\n"
	        "                    under /tmp, removed at exit)\n"
	        "  --bwrap           bubblewrap (default /usr/bin/bwrap)\n"
	        "  --snapshots       the snapshot names that exist (default " DEFAULT_SNAPSHOTS
	        ")\n");
}

/* A millisecond count 0..3600000 of an option; -1 when malformed. */
static long long ms_arg(const char *s, long long min)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	return errno || end == s || *end || v < min || v > 3600000 ? -1 : v;
}

int main(int argc, char **argv)
{
	const char *listen = "127.0.0.1:0", *root = NULL;
	const char *start = "300", *stop = "200", *minute = "60000";
	char err[1024];
	dt_double d;
	const mt_serve_opt opts[] = {
	    {"--listen", &listen},      {"--api-key", &d.api_key},     {"--start-delay-ms", &start},
	    {"--stop-delay-ms", &stop}, {"--minute-ms", &minute},      {"--root", &root},
	    {"--bwrap", &d.bwrap},      {"--snapshots", &d.snapshots}, {NULL, NULL},
	};
	int st, rc = 1;

	memset(&d, 0, sizeof(d));
	d.bwrap = "/usr/bin/bwrap";
	d.snapshots = DEFAULT_SNAPSHOTS;
	if ((st = mt_serve_args(argc, argv, "daytona-double", opts, usage)) >= 0)
		return st;
	d.cfg0.start_delay_ms = ms_arg(start, 0);
	d.cfg0.stop_delay_ms = ms_arg(stop, 0);
	d.cfg0.minute_ms = ms_arg(minute, 1);
	if (d.cfg0.start_delay_ms < 0 || d.cfg0.stop_delay_ms < 0 || d.cfg0.minute_ms < 0) {
		fprintf(stderr, "daytona-double: --start-delay-ms, --stop-delay-ms and --minute-ms "
		                "take milliseconds, 0..3600000 (--minute-ms at least 1)\n");
		return 2;
	}
	d.cfg = d.cfg0;
	if (!mt_serve_valid_listen(listen)) {
		fprintf(stderr, "daytona-double: --listen '%s' is not <IPv4 address>:<port>\n",
		        listen);
		return 2;
	}
	if (access(d.bwrap, X_OK) != 0) {
		fprintf(stderr, "daytona-double: bubblewrap '%s' cannot be run: %s\n", d.bwrap,
		        strerror(errno));
		return 2;
	}
	mk_log_init("daytona-double", MK_LOG_INFO);
	pthread_mutex_init(&d.mu, NULL);
	pthread_cond_init(&d.cv, NULL);
	d.requests = cJSON_CreateArray();
	d.faults = cJSON_CreateArray();
	if (!d.requests || !d.faults) {
		fprintf(stderr, "daytona-double: out of memory\n");
		goto out;
	}
	if (dt_proc_init(&d, root, err, sizeof(err)) != 0) {
		fprintf(stderr, "daytona-double: %s\n", err);
		goto out;
	}
	/*
	 * A sandbox's pid 1 whose bubblewrap was killed becomes our child, so
	 * that a stop can wait for its end (dt_double_proc.c).
	 */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
		fprintf(stderr, "daytona-double: cannot become a subreaper: %s\n", strerror(errno));
		goto out;
	}
	/* Before any thread starts, so that only sigwait below sees the stop signals. */
	mk_svc_block_signals();
	if (dt_sandbox_start(&d, err, sizeof(err)) != 0 ||
	    dt_http_start(&d, listen, err, sizeof(err)) != 0) {
		fprintf(stderr, "daytona-double: %s\n", err);
		goto out;
	}
	mt_serve_wait(d.port, "DTD-STOP");
	rc = 0;
out:
	/* Kill the sandboxes' processes first: requests waiting on them then end. */
	dt_sandbox_halt(&d);
	dt_http_stop(&d);
	dt_sandbox_release(&d);
	dt_proc_fini(&d);
	cJSON_Delete(d.requests);
	cJSON_Delete(d.faults);
	pthread_cond_destroy(&d.cv);
	pthread_mutex_destroy(&d.mu);
	return rc;
}
