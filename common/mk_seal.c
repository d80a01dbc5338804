/*
 * mk_seal.c - authenticated messages on the internal bus (see mk_seal.h).
 */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "mk_buf.h"
#include "mk_log.h"
#include "mk_seal.h"
#include "mk_time.h"

#define SECRET_MAX 4096
static const char magic[4] = {'M', 'K', 'S', '1'};

void mk_seal_key_from(mk_seal_key *key, const void *secret, size_t len)
{
	static const char ctx[] = "mark bus key v1";

	/* Picks the fastest BLAKE2b for this CPU; safe to call again. */
	if (sodium_init() < 0)
		abort();
	crypto_generichash(key->k, sizeof(key->k), secret, len, (const unsigned char *)ctx,
	                   sizeof(ctx) - 1);
}

int mk_seal_key_load(mk_seal_key *key, const char *path, const char *setting, char *err,
                     size_t errlen)
{
	char buf[SECRET_MAX + 1];
	size_t len = 0;
	ssize_t n;
	int fd;

	if (!path || !*path) {
		mk_errf(err, errlen,
		        "%s is not set: every internal message is sealed with the deployment's "
		        "bus key (e.g. `openssl rand -hex 32 > bus.key`; make run creates one)",
		        setting);
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		mk_errf(err, errlen, "%s: cannot open '%s': %s", setting, path, strerror(errno));
		return -1;
	}
	while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			mk_errf(err, errlen, "%s: cannot read '%s': %s", setting, path,
			        strerror(errno));
			close(fd);
			sodium_memzero(buf, sizeof(buf));
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
	                   buf[len - 1] == '\t'))
		len--;
	if (len > SECRET_MAX || len < MK_SEAL_SECRET_MIN) {
		mk_errf(err, errlen, "%s: '%s' must hold a secret of %d to %d bytes (it has %zu)",
		        setting, path, MK_SEAL_SECRET_MIN, SECRET_MAX, len);
		sodium_memzero(buf, sizeof(buf));
		return -1;
	}
	mk_seal_key_from(key, buf, len);
	sodium_memzero(buf, sizeof(buf));
	return 0;
}

static void tag(const mk_seal_key *key, mk_seal_kind kind, const void *data, size_t len,
                unsigned char out[MK_SEAL_TAG_LEN])
{
	crypto_generichash_state st;
	unsigned char k = (unsigned char)kind;

	crypto_generichash_init(&st, key->k, sizeof(key->k), MK_SEAL_TAG_LEN);
	crypto_generichash_update(&st, &k, 1);
	crypto_generichash_update(&st, data, len);
	crypto_generichash_final(&st, out, MK_SEAL_TAG_LEN);
}

int mk_seal_msg(const mk_seal_key *key, mk_seal_kind kind, nng_msg *m)
{
	unsigned char seal[MK_SEAL_LEN];

	size_t len = nng_msg_len(m);
	unsigned char *p;

	memcpy(seal, magic, sizeof(magic));
	tag(key, kind, nng_msg_body(m), len, seal + sizeof(magic));
	/* Grown at the end and moved, not nng_msg_insert: libnng 1.5's insert
	 * can write past its buffer when the headroom is short. */
	if (nng_msg_realloc(m, len + sizeof(seal)) != 0)
		return -1;
	p = nng_msg_body(m);
	memmove(p + sizeof(seal), p, len);
	memcpy(p, seal, sizeof(seal));
	return 0;
}

int mk_seal_open(const mk_seal_key *key, mk_seal_kind kind, nng_msg *m)
{
	const unsigned char *p = nng_msg_body(m);
	size_t len = nng_msg_len(m);
	unsigned char want[MK_SEAL_TAG_LEN];

	if (len < MK_SEAL_LEN || memcmp(p, magic, sizeof(magic)) != 0)
		return -1;
	tag(key, kind, p + MK_SEAL_LEN, len - MK_SEAL_LEN, want);
	if (crypto_verify_32(want, p + sizeof(magic)) != 0)
		return -1;
	return nng_msg_trim(m, MK_SEAL_LEN) == 0 ? 0 : -1;
}

int mk_seal_is_refusal(const void *data, size_t len)
{
	return len == sizeof(MK_SEAL_REFUSAL) - 1 && memcmp(data, MK_SEAL_REFUSAL, len) == 0;
}

void mk_seal_refused(const char *where)
{
	static atomic_llong last_ms;
	static atomic_int count;
	long long now = mk_mono_ms(), was = atomic_load(&last_ms);
	int n = atomic_fetch_add(&count, 1) + 1;

	if (was && now - was < 10000)
		return;
	if (!atomic_compare_exchange_strong(&last_ms, &was, now))
		return;
	atomic_fetch_sub(&count, n);
	MK_WARN("BUS-REFUSED", NULL,
	        "%s refused %d message(s) not sealed with this deployment's bus key (a peer "
	        "with another key, or not one of Mark's processes)",
	        where, n);
}
