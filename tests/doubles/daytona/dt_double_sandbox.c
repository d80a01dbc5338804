/*
 * dt_double_sandbox.c - the sandboxes of the Daytona double: the registry,
 * the Sandbox object the API returns, and the ticker thread that moves
 * each sandbox through its states the way Daytona's runners do.
 *
 * A lifecycle call only records what is wanted (desiredState) and when the
 * current step ends (due); the ticker does the rest: creating -> started,
 * started -> stopping -> stopped (killing the sandbox's processes, and
 * stopped only once every one of them has exited),
 * stopped -> archiving -> archived, archived -> restoring -> started,
 * anything -> destroying -> destroyed (likewise; then the sandbox is forgotten and its
 * directory removed, once no request holds it). It also applies the
 * auto-stop, auto-archive and auto-delete intervals, counting "minutes" of
 * minute_ms, and reaps session shells that have exited.
 *
 * Everything here runs under d->mu, except the ticker's removal of a
 * destroyed sandbox's files, which happens after it is unlinked.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dt_double.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"

static const char *const state_names[DT_NSTATES] = {
    "creating", "pending_build", "building_snapshot", "starting",  "started",    "stopping",
    "stopped",  "archiving",     "archived",          "restoring", "destroying", "destroyed",
    "error",    "build_failed",
};

const char *dt_state_name(dt_state s)
{
	return s >= 0 && s < DT_NSTATES ? state_names[s] : "unknown";
}

/* ------------------------------------------------------------------ registry */

dt_sandbox *dt_sandbox_by_id(dt_double *d, const char *id)
{
	dt_sandbox *s;

	for (s = d->sandboxes; s; s = s->next)
		if (s->state != DT_DESTROYED && strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

dt_sandbox *dt_sandbox_find(dt_double *d, const char *id_or_name)
{
	dt_sandbox *s = dt_sandbox_by_id(d, id_or_name);

	if (s)
		return s;
	for (s = d->sandboxes; s; s = s->next)
		if (s->state != DT_DESTROYED && strcmp(s->name, id_or_name) == 0)
			return s;
	return NULL;
}

void dt_uuid4(char *out)
{
	unsigned char b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

		if (n > 0)
			got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
}

static void sandbox_free(dt_sandbox *s)
{
	if (!s)
		return;
	dt_session_drop_all(s);
	if (s->fs_fd >= 0)
		close(s->fs_fd);
	cJSON_Delete(s->spec);
	free(s->name);
	free(s->error_reason);
	free(s);
}

dt_sandbox *dt_sandbox_new(dt_double *d, char *err, size_t errlen)
{
	dt_sandbox *s, *p;
	int live = 0;

	for (p = d->sandboxes; p; p = p->next)
		live += p->state != DT_DESTROYED;
	if (live >= DT_MAX_SANDBOXES) {
		mk_errf(err, errlen, "Total sandbox limit exceeded. Maximum allowed: %d.",
		        DT_MAX_SANDBOXES);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		mk_errf(err, errlen, "out of memory");
		return NULL;
	}
	s->fs_fd = -1;
	dt_uuid4(s->id);
	s->seq = ++d->seq;
	s->created = s->updated = s->activity = mk_now_ms();
	s->state = s->desired = DT_CREATING;
	snprintf(s->dir, sizeof(s->dir), "%s/%s", d->root, s->id);
	s->name = strdup(s->id);
	s->spec = cJSON_CreateObject();
	if (!s->name || !s->spec) {
		mk_errf(err, errlen, "out of memory");
		sandbox_free(s);
		return NULL;
	}
	if (dt_proc_mkdirs(d, s, err, errlen) != 0) {
		sandbox_free(s);
		return NULL;
	}
	s->next = d->sandboxes;
	d->sandboxes = s;
	return s;
}

void dt_sandbox_unref(dt_double *d, dt_sandbox *s)
{
	(void)d;
	if (s->refs > 0)
		s->refs--;
}

int dt_sandbox_ephemeral(const dt_sandbox *s)
{
	long long v = -1;

	return mk_json_int(s->spec, "autoDeleteInterval", &v) == 0 && v == 0;
}

void dt_sandbox_kill(dt_sandbox *s)
{
	dt_session *se;
	int i;

	for (i = 0; i < DT_MAX_RUNS; i++)
		if (s->runs[i] > 0)
			dt_proc_kill(s->runs[i]);
	for (se = s->sessions; se; se = se->next)
		if (se->pid > 0)
			dt_proc_kill(se->pid);
}

void dt_sandbox_dying(dt_sandbox *s, pid_t pgid)
{
	size_t i;

	if (pgid <= 0 || dt_proc_group_gone(pgid))
		return;
	for (i = 0; i < sizeof(s->dying) / sizeof(s->dying[0]); i++) {
		if (s->dying[i] == 0) {
			s->dying[i] = pgid;
			return;
		}
	}
	/* No room (cannot happen: one per run and session): it was killed, so it ends soon. */
	while (!dt_proc_group_gone(pgid))
		mk_sleep_ms(1);
}

int dt_sandbox_quiet(dt_sandbox *s)
{
	const dt_session *se;
	int quiet = s->spawning == 0;
	size_t i;

	for (i = 0; i < DT_MAX_RUNS; i++)
		quiet &= s->runs[i] == 0;
	for (se = s->sessions; se; se = se->next)
		quiet &= se->pid <= 0;
	for (i = 0; i < sizeof(s->dying) / sizeof(s->dying[0]); i++) {
		if (s->dying[i] > 0 && dt_proc_group_gone(s->dying[i]))
			s->dying[i] = 0;
		quiet &= s->dying[i] == 0;
	}
	return quiet;
}

void dt_sandbox_set(dt_double *d, dt_sandbox *s, dt_state state, dt_state desired,
                    long long step_ms)
{
	s->state = state;
	s->desired = desired;
	s->pending = state != desired && state != DT_ERROR && state != DT_BUILD_FAILED;
	s->due = step_ms >= 0 ? mk_mono_ms() + step_ms : 0;
	s->updated = mk_now_ms();
	if (state == DT_STOPPED)
		s->rested = s->updated;
	pthread_cond_broadcast(&d->cv);
}

void dt_sandbox_soft_delete(dt_double *d, dt_sandbox *s)
{
	size_t len = strlen(s->name) + 48;
	char *name = malloc(len);

	if (name) {
		snprintf(name, len, "DESTROYED_%s_%lld", s->name, (long long)mk_now_ms());
		free(s->name);
		s->name = name;
	}
	dt_sandbox_set(d, s, s->state, DT_DESTROYED, 0);
}

void dt_sandbox_rebase(dt_double *d)
{
	int64_t now = mk_mono_ms();
	dt_sandbox *s;

	for (s = d->sandboxes; s; s = s->next) {
		int starting = s->state == DT_CREATING || s->state == DT_PENDING_BUILD ||
		               s->state == DT_BUILDING_SNAPSHOT || s->state == DT_STARTING ||
		               s->state == DT_RESTORING;
		int64_t step = starting ? d->cfg.start_delay_ms : d->cfg.stop_delay_ms;

		if (s->due > now + step)
			s->due = now + step;
	}
}

/* ------------------------------------------------------------------ the object */

/* Copy spec's name into o when present. */
static void echo(cJSON *o, const cJSON *spec, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, name);

	if (v)
		cJSON_AddItemToObject(o, name, cJSON_Duplicate(v, 1));
}

cJSON *dt_sandbox_json(const dt_double *d, const dt_sandbox *s, int list_item)
{
	static const char *const always[] = {"snapshot",        "user",   "labels", "public",
	                                     "networkBlockAll", "target", "cpu",    "gpu",
	                                     "memory",          "disk"};
	static const char *const optional[] = {"networkAllowList", "domainAllowList",
	                                       "autoStopInterval", "autoArchiveInterval",
	                                       "autoDeleteInterval"};
	static const char *const full_only[] = {"env", "volumes", "buildInfo", "outboundProxyUrl"};
	cJSON *o = cJSON_CreateObject();
	char ts[40];
	size_t i;

	cJSON_AddStringToObject(o, "id", s->id);
	cJSON_AddStringToObject(o, "organizationId", DT_ORG_ID);
	cJSON_AddStringToObject(o, "name", s->name);
	for (i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		echo(o, s->spec, always[i]);
	if (!list_item)
		for (i = 0; i < sizeof(full_only) / sizeof(full_only[0]); i++)
			echo(o, s->spec, full_only[i]);
	for (i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
		echo(o, s->spec, optional[i]);
	cJSON_AddStringToObject(o, "state", dt_state_name(s->state));
	cJSON_AddStringToObject(o, "desiredState", dt_state_name(s->desired));
	if (s->error_reason) {
		cJSON_AddStringToObject(o, "errorReason", s->error_reason);
		cJSON_AddBoolToObject(o, "recoverable", 0);
	}
	cJSON_AddStringToObject(o, "backupState", "None");
	dt_iso_time(s->created, ts, sizeof(ts));
	cJSON_AddStringToObject(o, "createdAt", ts);
	dt_iso_time(s->updated, ts, sizeof(ts));
	cJSON_AddStringToObject(o, "updatedAt", ts);
	dt_iso_time(s->activity, ts, sizeof(ts));
	cJSON_AddStringToObject(o, "lastActivityAt", ts);
	cJSON_AddStringToObject(o, "sandboxClass", "container");
	cJSON_AddStringToObject(o, "daemonVersion", DT_VERSION);
	cJSON_AddStringToObject(o, "runnerId", "runner-double-1");
	cJSON_AddStringToObject(o, "toolboxProxyUrl", d->toolbox_url);
	return o;
}

/* ------------------------------------------------------------------ the ticker */

/* The step after a due one, for a sandbox that wants to be somewhere else. */
static void advance(dt_double *d, dt_sandbox *s)
{
	const dt_config *c = &d->cfg;

	switch (s->desired) {
	case DT_DESTROYED:
		if (s->state != DT_DESTROYING) {
			dt_sandbox_kill(s);
			dt_session_drop_all(s);
			dt_sandbox_set(d, s, DT_DESTROYING, DT_DESTROYED, c->stop_delay_ms);
		} else if (dt_sandbox_quiet(s)) { /* else: the next tick looks again */
			dt_sandbox_set(d, s, DT_DESTROYED, DT_DESTROYED, -1);
			MK_INFO("DTD-DESTROYED", NULL, "sandbox %s destroyed", s->id);
		}
		break;
	case DT_STOPPED:
		if (s->state == DT_STARTED) {
			dt_sandbox_kill(s);
			dt_session_drop_all(s);
			dt_sandbox_set(d, s, DT_STOPPING, DT_STOPPED, c->stop_delay_ms);
		} else if (s->state != DT_STOPPING || dt_sandbox_quiet(s)) {
			/* Stopped only once its processes have really exited. */
			dt_sandbox_set(d, s, DT_STOPPED, DT_STOPPED, -1);
		}
		break;
	case DT_ARCHIVED: dt_sandbox_set(d, s, DT_ARCHIVED, DT_ARCHIVED, -1); break;
	case DT_STARTED:
		switch (s->state) {
		case DT_PENDING_BUILD:
			dt_sandbox_set(d, s, DT_BUILDING_SNAPSHOT, DT_STARTED, c->start_delay_ms);
			break;
		case DT_BUILDING_SNAPSHOT:
		case DT_STOPPED:
			dt_sandbox_set(d, s, DT_STARTING, DT_STARTED, c->start_delay_ms);
			break;
		case DT_ARCHIVED:
			dt_sandbox_set(d, s, DT_RESTORING, DT_STARTED, c->start_delay_ms);
			break;
		default:
			s->activity = mk_now_ms();
			dt_sandbox_set(d, s, DT_STARTED, DT_STARTED, -1);
			break;
		}
		break;
	default: s->due = 0; break;
	}
}

/* Auto-stop, auto-archive and auto-delete of a resting sandbox. */
static void auto_lifecycle(dt_double *d, dt_sandbox *s, int64_t now)
{
	long long stop = 15, archive = 10080, del = -1, minute = d->cfg.minute_ms;

	if (s->pending || s->due)
		return;
	mk_json_int(s->spec, "autoStopInterval", &stop);
	mk_json_int(s->spec, "autoArchiveInterval", &archive);
	mk_json_int(s->spec, "autoDeleteInterval", &del);
	if (s->state == DT_STARTED && stop > 0 && now - s->activity >= stop * minute) {
		MK_INFO("DTD-AUTOSTOP", NULL, "sandbox %s idle for %lld minute(s): stopping", s->id,
		        stop);
		dt_sandbox_set(d, s, DT_STARTED, del == 0 ? DT_DESTROYED : DT_STOPPED, 0);
	} else if (s->state == DT_STOPPED && del > 0 && now - s->rested >= del * minute) {
		dt_sandbox_set(d, s, DT_STOPPED, DT_DESTROYED, 0);
	} else if (s->state == DT_STOPPED && del != 0 && archive > 0 &&
	           now - s->rested >= archive * minute) {
		dt_sandbox_set(d, s, DT_ARCHIVING, DT_ARCHIVED, d->cfg.stop_delay_ms);
	}
}

static void *ticker_main(void *arg)
{
	dt_double *d = arg;

	pthread_mutex_lock(&d->mu);
	while (!d->stopping) {
		int64_t mono = mk_mono_ms(), now = mk_now_ms();
		dt_sandbox **pp = &d->sandboxes, *gone = NULL;

		while (*pp) {
			dt_sandbox *s = *pp;

			dt_session_reap(s);
			dt_sandbox_quiet(s); /* reaps what killed groups left */
			if (s->due && mono >= s->due)
				advance(d, s);
			else if (!s->due)
				auto_lifecycle(d, s, now);
			if (s->state == DT_DESTROYED && s->refs == 0) {
				*pp = s->next;
				s->next = gone;
				gone = s;
				continue;
			}
			pp = &s->next;
		}
		pthread_mutex_unlock(&d->mu);
		while (gone) {
			dt_sandbox *s = gone;

			gone = s->next;
			dt_proc_rmdirs(s);
			sandbox_free(s);
		}
		mk_sleep_ms(DT_TICK_MS);
		pthread_mutex_lock(&d->mu);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

int dt_sandbox_start(dt_double *d, char *err, size_t errlen)
{
	if (pthread_create(&d->ticker, NULL, ticker_main, d) != 0) {
		mk_errf(err, errlen, "cannot start the state machine's thread");
		return -1;
	}
	d->ticker_started = 1;
	return 0;
}

void dt_sandbox_halt(dt_double *d)
{
	dt_sandbox *s;

	pthread_mutex_lock(&d->mu);
	d->stopping = 1;
	for (s = d->sandboxes; s; s = s->next)
		dt_sandbox_kill(s);
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

void dt_sandbox_release(dt_double *d)
{
	if (d->ticker_started) {
		pthread_join(d->ticker, NULL);
		d->ticker_started = 0;
	}
	while (d->sandboxes) {
		dt_sandbox *s = d->sandboxes;
		int64_t until = mk_mono_ms() + DT_CREATE_WAIT_MS;

		d->sandboxes = s->next;
		dt_sandbox_kill(s);
		dt_session_drop_all(s);
		/* Every request has ended: wait for what they and the kill left to exit. */
		while (!dt_sandbox_quiet(s) && mk_mono_ms() < until)
			mk_sleep_ms(DT_TICK_MS);
		dt_proc_rmdirs(s);
		sandbox_free(s);
	}
}
