/*
 * sbx_seccomp.h - the seccomp filter of a local sandbox (libexecutor,
 * sandbox layer): system calls no analysis needs and a sandbox escape
 * might (ptrace, the mount family, kernel modules, bpf, namespaces, ...)
 * fail with EPERM. The deny list itself is in sbx_seccomp.c.
 */
#ifndef SBX_SECCOMP_H
#define SBX_SECCOMP_H

#include <stddef.h>

#include <linux/filter.h>

/*
 * The program, in bwrap's --seccomp format (the raw sock_filter array):
 * another architecture's calls kill the process (their numbers mean other
 * calls), x32 calls on x86_64 fail, the deny list fails with EPERM, the
 * rest is allowed. deny_unwatched_memory also denies memfd and SysV shared
 * memory, which no memory watch sees (for sandboxes without a cgroup).
 * 0 with *prog (the caller frees it) and its length in instructions, or -1
 * when out of memory or on an architecture without a filter here.
 */
int sbx_seccomp_build(int deny_unwatched_memory, struct sock_filter **prog, size_t *len);

#endif
