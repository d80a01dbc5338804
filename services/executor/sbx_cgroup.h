/*
 * sbx_cgroup.h - one control group per local sandbox (libexecutor, sandbox
 * layer): the kernel holds everything a sandbox makes the host hold to one
 * memory limit (process memory, files in its tmpfs mounts, memfd and shared
 * memory; no swap), gives it a CPU share and caps its processes.
 *
 * cgroup v2 works under a delegated subtree; cgroup v1 needs root and the
 * memory controller (cpu and pids are used when mounted). Where neither can
 * be had the mode is "off" and the caller closes the mechanisms instead.
 */
#ifndef SBX_CGROUP_H
#define SBX_CGROUP_H

#include <stddef.h>
#include <sys/types.h>

#define SBX_CG_PATH  256
#define SBX_CG_CTRLS 3 /* v1: memory, cpu, pids; v2: one directory */

typedef enum { SBX_CG_OFF, SBX_CG_V1, SBX_CG_V2 } sbx_cg_kind;

/* The parent groups of a backend's sandboxes. */
typedef struct {
	sbx_cg_kind kind;
	char dir[SBX_CG_CTRLS][SBX_CG_PATH]; /* v1: per controller ("" when not mounted) */
	char ctrl[SBX_CG_CTRLS][8];          /* their controller names */
	int made_base;                       /* v1: the per-executor groups are ours to remove */
	unsigned long long next;             /* names the next sandbox's group */
	char why[300];                       /* off: why no cgroup could be used */
} sbx_cg;

/* One sandbox's group. */
typedef struct {
	char dir[SBX_CG_CTRLS][SBX_CG_PATH]; /* "" where none */
	int procs_fd[SBX_CG_CTRLS];          /* cgroup.procs, for the child to join; -1 */
	int events_fd;                       /* memory.events (v2) or memory.oom_control (v1) */
	long long oom_base;                  /* OOM kills counted when it was made */
} sbx_cg_box;

/*
 * Choose the mode: want "auto" (v2, else v1, else off), "v2", "v1" or
 * "off"; path names a v2 subtree delegated to the executor (NULL or "":
 * its own cgroup). 0, or -1 with err when the mode asked for cannot be had.
 */
int sbx_cg_open(sbx_cg *cg, const char *want, const char *path, char *err, size_t errlen);
const char *sbx_cg_mode(const sbx_cg *cg); /* "cgroup-v2", "cgroup-v1" or "off" */
void sbx_cg_close(sbx_cg *cg);

/*
 * A new group with the limits (0: none of that kind): memory in bytes,
 * CPU in thousandths of a core, pids. 0, or -1 with err. Thread-safe.
 */
int sbx_cg_box_make(sbx_cg *cg, sbx_cg_box *box, long long memory, long long millicores,
                    long long pids, char *err, size_t errlen);
/* Between fork and exec: move the calling process into the group; 0 or -errno. */
int sbx_cg_box_join(const sbx_cg_box *box, pid_t self);
/* The parent's copies of the join descriptors, once the child has them. */
void sbx_cg_box_close_join(sbx_cg_box *box);
/* 1 when the kernel OOM-killed a process of the group since it was made. */
int sbx_cg_box_oom(const sbx_cg_box *box);
/* Remove the group (its processes gone) and close what is open. */
void sbx_cg_box_free(sbx_cg_box *box);

#endif
