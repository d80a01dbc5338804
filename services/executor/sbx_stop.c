/*
 * sbx_stop.c - the end of a local sandbox (libexecutor, sandbox layer;
 * part of the local backend, see sbx_local_int.h): the sandbox's init,
 * learnt from bwrap's --info-fd and held by a pidfd; the kill; the reaping;
 * and how the sandbox ended, in words.
 *
 * Killing is exact: SIGKILL to the init makes the kernel kill every
 * process of the PID namespace, and the outer bwrap, which is our child,
 * exits once that is done, so reaping it means nothing of the sandbox is
 * left. When the driver dies by itself, bwrap exits before the init, which
 * is orphaned; the executor is a child subreaper (sbx_local_new), so the
 * init becomes our child and is reaped here, not left to PID 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"
#include "sbx_local_int.h"

#define KILL_WAIT_MS 5000 /* for a killed sandbox to be gone before the host insists */

/* Wait up to ms for a pidfd to report its process's exit; 1 when it did. */
static int pidfd_wait(int fd, int ms)
{
	int64_t end = mk_mono_ms() + ms;

	if (fd < 0)
		return 0;
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = end - mk_mono_ms();
		int r = poll(&p, 1, left > 0 ? (int)left : 0);

		if (r > 0)
			return 1;
		if (r == 0 || (r < 0 && errno != EINTR))
			return 0;
	}
}

static long long cpu_ms_of(const struct rusage *ru)
{
	return (long long)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000 +
	       (ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1000;
}

void sbx_local_reap(sbx_local_box *s)
{
	struct rusage ru;
	int st;

	if (s->reaped || s->pid <= 0)
		return;
	for (;;) {
		pid_t r = wait4(s->pid, &st, 0, &ru);

		if (r == s->pid) {
			s->status = st;
			s->cpu_ms = cpu_ms_of(&ru);
			break;
		}
		if (r < 0 && errno == EINTR)
			continue;
		s->status = -1; /* e.g. SIGCHLD ignored by the process: the kernel reaped it */
		break;
	}
	s->reaped = 1;
}

void sbx_local_stop(sbx_local_box *s, int grace_ms)
{
	s->dead = 1;
	if (s->pid <= 0 || s->reaped)
		goto init;
	if (grace_ms > 0 && pidfd_wait(s->pidfd, grace_ms))
		goto init;
	s->killed = 1;
	if (s->init_fd >= 0)
		syscall(SYS_pidfd_send_signal, s->init_fd, SIGKILL, NULL, 0);
	if (!pidfd_wait(s->pidfd, KILL_WAIT_MS)) {
		MK_WARN("EXEC-SBX-KILL", NULL, "sandbox %d did not stop after SIGKILL to its init",
		        (int)s->pid);
		kill(s->pid, SIGKILL);
	}
init:
	sbx_local_reap(s);
	/*
	 * bwrap also exits on its own when the driver dies, before the init;
	 * then the init, no longer our grandchild, is killed here and waited
	 * for, so the uid slot is free of processes when it is given back.
	 */
	if (s->init_fd >= 0) {
		struct rusage ru;
		siginfo_t si;

		syscall(SYS_pidfd_send_signal, s->init_fd, SIGKILL, NULL, 0);
		if (!pidfd_wait(s->init_fd, KILL_WAIT_MS))
			MK_WARN("EXEC-SBX-KILL", NULL, "sandbox init of %d is still running",
			        (int)s->pid);
		/*
		 * Orphaned, it became our child (we are a subreaper): reap it (else
		 * ECHILD). The raw waitid also gives its rusage, which counts the
		 * driver it reaped: how the CPU limit is told from other kills.
		 */
		memset(&si, 0, sizeof(si));
		if (syscall(SYS_waitid, P_PIDFD, s->init_fd, &si, WEXITED | WNOHANG, &ru) == 0 &&
		    si.si_pid != 0 && cpu_ms_of(&ru) > s->cpu_ms)
			s->cpu_ms = cpu_ms_of(&ru);
		sbx_local_close_fd(&s->init_fd);
	}
}

/* ---- the init ----------------------------------------------------------------- */

/* The parent pid of a process, from /proc; -1 when it is gone. */
static pid_t ppid_of(pid_t pid)
{
	char path[64], buf[512], *p;
	int fd, ppid;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold anything, ')' included */
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

/* bwrap's --info-fd JSON arrived (complete or not): take a pidfd of the sandbox's init. */
static void info_take(sbx_local_box *s)
{
	char e[64];
	cJSON *j;
	long long pid;
	int fd;

	if (s->init_fd >= 0 || !memchr(s->info, '}', s->info_len))
		return;
	j = mk_json_parse(s->info, s->info_len, 4, e, sizeof(e));
	if (!j)
		return;
	if (mk_json_int(j, "child-pid", &pid) == 0 && pid > 1 && pid <= INT_MAX) {
		fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
		/*
		 * The pid is trusted only if, once we hold a pidfd (which cannot
		 * be recycled), the process is still bwrap's child: otherwise
		 * the init is gone already and its pid may be someone else's.
		 */
		if (fd >= 0 && ppid_of((pid_t)pid) == s->pid) {
			s->init_fd = fd;
			s->init_pid = (pid_t)pid;
		} else if (fd >= 0)
			close(fd);
	}
	cJSON_Delete(j);
	sbx_local_close_fd(&s->info_fd);
}

void sbx_local_info_read(sbx_local_box *s)
{
	ssize_t k = read(s->info_fd, s->info + s->info_len, sizeof(s->info) - 1 - s->info_len);

	if (k > 0) {
		s->info_len += (size_t)k;
		info_take(s); /* closes info_fd once it has the pid */
	} else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
		sbx_local_close_fd(&s->info_fd);
	}
	if (s->info_fd >= 0 && s->info_len == sizeof(s->info) - 1)
		sbx_local_close_fd(&s->info_fd);
}

/* ---- how it ended ------------------------------------------------------------ */

/* "SIGKILL" for 9. */
static const char *sig_name(int sig, char *buf, size_t len)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev)
		snprintf(buf, len, "SIG%s", abbrev);
	else
		snprintf(buf, len, "signal %d", sig);
	return buf;
}

void sbx_local_death_text(const sbx_local_box *s, char *buf, size_t len, const char **limit)
{
	long long cpu_total = s->b->lim.cpu_total_s;
	int st = s->status, sig = 0;
	char name[32];

	*limit = NULL;
	if (s->killed) {
		snprintf(buf, len, "it closed its control channel and was stopped");
		return;
	}
	if (!s->reaped || st < 0) {
		snprintf(buf, len, "its exit status is unknown");
		return;
	}
	/* bwrap exits with the driver's status, 128+N when a signal N killed it. */
	if (WIFSIGNALED(st))
		sig = WTERMSIG(st);
	else if (WIFEXITED(st) && WEXITSTATUS(st) > 128 && WEXITSTATUS(st) < 128 + NSIG)
		sig = WEXITSTATUS(st) - 128;
	if (!sig) {
		snprintf(buf, len, "exit code %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		return;
	}
	sig_name(sig, name, sizeof(name));
	/*
	 * The kernel's CPU limit sends SIGXCPU (which the driver turns into an
	 * exception, unless the code undid that) and SIGKILL at the hard limit.
	 * A SIGKILL may also come from the OOM killer or the code itself: it
	 * is the CPU limit when the sandbox's processes used that much CPU
	 * (unknown CPU: assumed so).
	 */
	if (cpu_total > 0 &&
	    (sig == SIGXCPU ||
	     (sig == SIGKILL && (s->cpu_ms < 0 || s->cpu_ms + 1000 >= cpu_total * 1000)))) {
		*limit = "cpu_time";
		snprintf(buf, len, "killed by %s at its CPU time limit of %lld s", name, cpu_total);
		return;
	}
	snprintf(buf, len, "killed by %s", name);
}
