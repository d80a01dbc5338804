/*
 * mk_seal.h - authenticated messages on the internal bus.
 *
 * Every NNG message between Mark's processes carries a seal: the magic
 * "MKS1" and a 32-byte keyed BLAKE2b tag over the message's kind and its
 * bytes, under a per-deployment key that every service reads from its
 * <SERVICE>_BUS_KEY_FILE. A process that cannot seal cannot call an
 * operation (with a forged caller or not), answer in a service's place,
 * or register as an executor worker. The kind (request, reply, a worker's
 * line, a router's line) is part of what is tagged, so a message sealed
 * for one direction is refused in another.
 *
 * A seal authenticates; it does not encrypt (run the bus on a private
 * network). Replay is bounded by the deadline every request carries.
 *
 * A peer that refuses a message answers with the unsealed line
 * MK_SEAL_REFUSAL, so a deployment whose keys differ fails with a clear
 * message instead of a timeout. A refusal is taken only as a failure.
 */
#ifndef MK_SEAL_H
#define MK_SEAL_H

#include <stddef.h>

#include <nng/nng.h>

#define MK_SEAL_TAG_LEN 32
#define MK_SEAL_LEN     (4 + MK_SEAL_TAG_LEN) /* "MKS1" + tag, before the message */
#define MK_SEAL_REFUSAL "MKS1!refused: the message is not sealed with this deployment's bus key\n"

/* What a message is; part of the tag. */
typedef enum {
	MK_SEAL_REQUEST = 'Q', /* a caller to a service */
	MK_SEAL_REPLY = 'R',   /* a service to its caller */
	MK_SEAL_WORKER = 'W',  /* an executor worker to its router */
	MK_SEAL_ROUTER = 'J'   /* the router to a worker */
} mk_seal_kind;

typedef struct {
	unsigned char k[32];
} mk_seal_key;

/* The shortest secret a key file may hold (e.g. `openssl rand -hex 32`). */
#define MK_SEAL_SECRET_MIN 32

/*
 * Read the key file at path: its text, trailing whitespace removed, at
 * least MK_SEAL_SECRET_MIN bytes, is hashed into the key. Returns 0, or -1
 * with a message naming the file in err. setting names the variable for
 * that message ("AUTH_BUS_KEY_FILE").
 */
int mk_seal_key_load(mk_seal_key *key, const char *path, const char *setting, char *err,
                     size_t errlen);
/* The key for a secret of len bytes (tests). */
void mk_seal_key_from(mk_seal_key *key, const void *secret, size_t len);

/* Put the seal in front of m's body. Returns 0, or -1 when out of memory. */
int mk_seal_msg(const mk_seal_key *key, mk_seal_kind kind, nng_msg *m);
/*
 * Check m's seal and take it off. Returns 0, or -1 when the seal is
 * missing or wrong (m is left as it was).
 */
int mk_seal_open(const mk_seal_key *key, mk_seal_kind kind, nng_msg *m);
/*
 * Log that where (a service, "router", ...) refused a message that was not
 * sealed with its key: a warning at most every 10 s, with the count since.
 */
void mk_seal_refused(const char *where);
/* Whether data is a peer's refusal (MK_SEAL_REFUSAL). */
int mk_seal_is_refusal(const void *data, size_t len);

#endif
