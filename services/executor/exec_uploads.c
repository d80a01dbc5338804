/*
 * exec_uploads.c - files users upload to analyse: exec.upload, exec.uploads,
 * exec.upload_get, exec.upload_delete, and exec.attach, which copies an
 * upload into a chat's kept files (and its live workspace) for a turn.
 *
 * An upload belongs to its owner alone: anyone else's id answers not_found
 * like a missing one. Its kind is decided by its content, never its name:
 * Parquet (PAR1 at both ends), Excel (an xlsx ZIP with an xl/ entry, or an
 * OLE2 file holding a workbook stream), JSON (one object or array, or
 * NDJSON: one per line), CSV or TSV (UTF-8 text whose first records split
 * into the same number of columns, at least two). Anything else is
 * unsupported_media_type. Uploads live in Postgres (table uploads), so any
 * worker can serve any of these ops. Runs on the request's thread; the
 * database connection is the caller's.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "executor.h"
#include "mk_b64.h"
#include "mk_json.h"

#define PAGE_DEFAULT 20
#define JSON_DEPTH   256       /* deeper than this is not a data file we read */
#define TEXT_SAMPLE  (1 << 20) /* bytes of text whose first records decide CSV/TSV */
#define TEXT_RECORDS 50        /* records compared */

#define FILE_COLS                                                                                  \
	"id, name, kind, mime, bytes, "                                                            \
	"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "            \
	"(extract(epoch FROM created_at) * 1000000)::bigint"

#define ACCEPTED                                                                                   \
	"Mark reads CSV or TSV (UTF-8 text), Excel (.xlsx, .xls), JSON (or NDJSON) and Parquet"

/* ------------------------------------------------------------------ kinds */

typedef struct {
	const char *kind; /* as stored: csv, tsv, excel, parquet, json */
	const char *mime;
} file_kind;

static uint32_t le16(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const unsigned char *p)
{
	return le16(p) | le16(p + 2) << 16;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/*
 * Does the ZIP's central directory name an entry under xl/ (an Excel
 * workbook)? Found from the end-of-central-directory record (ZIP64 too);
 * every offset is checked against n.
 */
static int zip_has_xl(const unsigned char *d, size_t n)
{
	size_t i, eocd = SIZE_MAX, stop = n > 65557 ? n - 65557 : 0;
	uint64_t off, size, entries, k;

	if (n < 22)
		return 0;
	for (i = n - 22;; i--) {
		if (memcmp(d + i, "PK\x05\x06", 4) == 0) {
			eocd = i;
			break;
		}
		if (i == stop)
			break;
	}
	if (eocd == SIZE_MAX)
		return 0;
	entries = le16(d + eocd + 10);
	size = le32(d + eocd + 12);
	off = le32(d + eocd + 16);
	if (off == 0xffffffffu && eocd >= 20 && memcmp(d + eocd - 20, "PK\x06\x07", 4) == 0) {
		uint64_t z = le64(d + eocd - 20 + 8);

		if (n < 56 || z > n - 56 || memcmp(d + z, "PK\x06\x06", 4) != 0)
			return 0;
		entries = le64(d + z + 32);
		size = le64(d + z + 40);
		off = le64(d + z + 48);
	}
	if (off > n || size > n - off)
		return 0;
	for (k = 0, i = (size_t)off; k < entries && i + 46 <= off + size; k++) {
		size_t name = le16(d + i + 28), extra = le16(d + i + 30), note = le16(d + i + 32);

		if (memcmp(d + i, "PK\x01\x02", 4) != 0 || i + 46 + name > n)
			return 0;
		if (name >= 3 && memcmp(d + i + 46, "xl/", 3) == 0)
			return 1;
		i += 46 + name + extra + note;
	}
	return 0;
}

/*
 * Does the OLE2 compound file hold a "Workbook" (or, before Excel 97,
 * "Book") stream? Its directory is walked through the FAT sectors the
 * header lists (the first 109, which cover any directory a spreadsheet has
 * in practice), at most 4096 directory sectors.
 */
static int ole_has_workbook(const unsigned char *d, size_t n)
{
	uint32_t shift, ss, sec, hops;

	if (n < 512)
		return 0;
	shift = le16(d + 30);
	if (shift != 9 && shift != 12)
		return 0;
	ss = 1u << shift;
	sec = le32(d + 48);
	for (hops = 0; sec < 0xfffffffau && hops < 4096; hops++) {
		uint64_t at = (uint64_t)(sec + 1) * ss, fat_idx = sec / (ss / 4), fat_at;
		uint32_t fat_sec;

		if (at + ss > n)
			return 0;
		for (uint32_t e = 0; e < ss / 128; e++) {
			const unsigned char *ent = d + at + e * 128;
			uint32_t len = le16(ent + 64);
			char name[32];
			size_t k;

			if (ent[66] != 2 || len < 2 || len > 64) /* 2: a stream */
				continue;
			for (k = 0; k < (len - 2) / 2 && k < sizeof(name) - 1; k++)
				name[k] = ent[2 * k + 1] ? '?' : (char)ent[2 * k];
			name[k] = '\0';
			if (strcasecmp(name, "Workbook") == 0 || strcasecmp(name, "Book") == 0)
				return 1;
		}
		if (fat_idx >= 109)
			return 0;
		fat_sec = le32(d + 76 + fat_idx * 4);
		fat_at = (uint64_t)(fat_sec + 1) * ss + (sec % (ss / 4)) * 4;
		if (fat_sec >= 0xfffffffau || fat_at + 4 > n)
			return 0;
		sec = le32(d + fat_at);
	}
	return 0;
}

/* Is d valid UTF-8 (no overlong forms, no surrogates) without NUL bytes? */
static int utf8_text(const unsigned char *d, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = d[i];
		size_t k, more;
		uint32_t cp;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			more = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			more = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			more = 3, cp = c & 0x07;
		else
			return 0;
		if (n - i <= more)
			return 0;
		for (k = 1; k <= more; k++) {
			if ((d[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (d[i + k] & 0x3f);
		}
		if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += more + 1;
	}
	return 1;
}

static size_t skip_ws(const unsigned char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* The end of the JSON string at s[i] ('"'), or 0. */
static size_t json_string(const unsigned char *s, size_t n, size_t i)
{
	for (i++; i < n; i++) {
		if (s[i] == '"')
			return i + 1;
		if (s[i] < 0x20)
			return 0;
		if (s[i] != '\\')
			continue;
		if (++i >= n)
			return 0;
		if (s[i] == 'u') {
			if (n - i < 5 || !isxdigit(s[i + 1]) || !isxdigit(s[i + 2]) ||
			    !isxdigit(s[i + 3]) || !isxdigit(s[i + 4]))
				return 0;
			i += 4;
		} else if (!strchr("\"\\/bfnrt", s[i])) {
			return 0;
		}
	}
	return 0;
}

/* The end of the JSON number or literal at s[i], or 0. */
static size_t json_scalar(const unsigned char *s, size_t n, size_t i)
{
	static const char *const lit[] = {"true", "false", "null"};
	size_t d;

	for (size_t k = 0; k < 3; k++)
		if (n - i >= strlen(lit[k]) && memcmp(s + i, lit[k], strlen(lit[k])) == 0)
			return i + strlen(lit[k]);
	if (i < n && s[i] == '-')
		i++;
	if (i >= n || !isdigit(s[i]))
		return 0;
	if (s[i] == '0')
		i++;
	else
		while (i < n && isdigit(s[i]))
			i++;
	if (i < n && s[i] == '.') {
		for (d = ++i; i < n && isdigit(s[i]);)
			i++;
		if (i == d)
			return 0;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		if (++i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (d = i; i < n && isdigit(s[i]);)
			i++;
		if (i == d)
			return 0;
	}
	return i;
}

/*
 * The end of the one JSON object or array starting at s[i] (after
 * whitespace) within s[..n], or 0 when there is none. Checked without
 * building it, in constant memory, so a large file costs one pass.
 */
static size_t json_value(const unsigned char *s, size_t n, size_t i)
{
	enum { VALUE, FIRST_VALUE, FIRST_KEY, KEY, AFTER } st = VALUE;
	char stack[JSON_DEPTH];
	int depth = 0;

	i = skip_ws(s, n, i);
	if (i >= n || (s[i] != '{' && s[i] != '['))
		return 0;
	for (;;) {
		if (st == AFTER && depth == 0)
			return i;
		i = skip_ws(s, n, i);
		if (i >= n)
			return 0;
		switch (st) {
		case FIRST_VALUE:
			if (s[i] == ']') {
				depth--, i++, st = AFTER;
				break;
			}
			/* fall through */
		case VALUE:
			if (s[i] == '{' || s[i] == '[') {
				if (depth == JSON_DEPTH)
					return 0;
				stack[depth++] = (char)s[i];
				st = s[i] == '{' ? FIRST_KEY : FIRST_VALUE;
				i++;
			} else {
				i = s[i] == '"' ? json_string(s, n, i) : json_scalar(s, n, i);
				if (!i)
					return 0;
				st = AFTER;
			}
			break;
		case FIRST_KEY:
			if (s[i] == '}') {
				depth--, i++, st = AFTER;
				break;
			}
			/* fall through */
		case KEY:
			if (s[i] != '"' || !(i = json_string(s, n, i)))
				return 0;
			i = skip_ws(s, n, i);
			if (i >= n || s[i] != ':')
				return 0;
			i++, st = VALUE;
			break;
		case AFTER:
			if (s[i] == ',') {
				i++, st = stack[depth - 1] == '{' ? KEY : VALUE;
			} else if ((s[i] == '}' && stack[depth - 1] == '{') ||
			           (s[i] == ']' && stack[depth - 1] == '[')) {
				depth--, i++;
			} else {
				return 0;
			}
			break;
		}
	}
}

/* JSON (1), NDJSON (2: an object or array on each non-blank line) or neither (0). */
static int json_kind(const unsigned char *s, size_t n)
{
	size_t i = json_value(s, n, 0), line, end;
	int lines = 0;

	if (i && skip_ws(s, n, i) == n)
		return 1;
	for (line = 0; line < n; line = end + 1) {
		const unsigned char *nl = memchr(s + line, '\n', n - line);

		end = nl ? (size_t)(nl - s) : n;
		if (skip_ws(s, end, line) == end)
			continue; /* a blank line */
		i = json_value(s, end, line);
		if (!i || skip_ws(s, end, i) != end)
			return 0;
		lines++;
	}
	return lines > 1 ? 2 : 0;
}

/*
 * The column count shared by the first records of text split on sep
 * (double quotes protect separators and line breaks, as in RFC 4180), or
 * 0 when the records disagree. Blank lines are skipped; when the text was
 * cut (partial), its last record is not counted.
 */
static int columns(const unsigned char *s, size_t n, int partial, char sep)
{
	int want = 0, cols = 1, records = 0, quoted = 0, blank = 1, start = 1;

	for (size_t i = 0; i < n && records < TEXT_RECORDS; i++) {
		unsigned char c = s[i];

		if (quoted) {
			if (c == '"' && i + 1 < n && s[i + 1] == '"')
				i++; /* "" is a quote inside a quoted field */
			else if (c == '"')
				quoted = 0;
			continue;
		}
		if (c == '\n') {
			if (!blank) {
				if (want && cols != want)
					return 0;
				want = cols;
				records++;
			}
			cols = 1, blank = 1, start = 1;
		} else if (c == (unsigned char)sep) {
			cols++, blank = 0, start = 1;
		} else if (c == '"' && start) {
			quoted = 1, blank = 0, start = 0;
		} else if (c == ' ' && start) {
			blank = 0; /* spaces before a quoted field */
		} else if (c != '\r') {
			blank = 0, start = 0;
		}
	}
	if (!partial && !blank && !quoted && records < TEXT_RECORDS) {
		if (want && cols != want)
			return 0;
		want = cols;
	}
	return want;
}

/*
 * The kind of d by its content, or NULL with the reason in why (a clause
 * such as "it is binary, ...").
 */
static const file_kind *sniff(const unsigned char *d, size_t n, char *why, size_t whylen)
{
	static const file_kind csv = {"csv", "text/csv"},
	                       tsv = {"tsv", "text/tab-separated-values"},
	                       xlsx = {"excel", "application/vnd.openxmlformats-officedocument."
	                                        "spreadsheetml.sheet"},
	                       xls = {"excel", "application/vnd.ms-excel"},
	                       parquet = {"parquet", "application/vnd.apache.parquet"},
	                       json = {"json", "application/json"},
	                       ndjson = {"json", "application/x-ndjson"};
	size_t sample = n;
	int k;

	if (n >= 12 && memcmp(d, "PAR1", 4) == 0 && memcmp(d + n - 4, "PAR1", 4) == 0)
		return &parquet;
	if (n >= 8 && memcmp(d, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8) == 0) {
		if (ole_has_workbook(d, n))
			return &xls;
		mk_errf(why, whylen, "it is an Office document without a workbook");
		return NULL;
	}
	if (n >= 4 && memcmp(d, "PK\x03\x04", 4) == 0) {
		if (zip_has_xl(d, n))
			return &xlsx;
		mk_errf(why, whylen, "it is a ZIP archive without an Excel workbook");
		return NULL;
	}
	if (!utf8_text(d, n)) {
		mk_errf(why, whylen, "it is binary, or text that is not UTF-8");
		return NULL;
	}
	if (n >= 3 && memcmp(d, "\xef\xbb\xbf", 3) == 0) /* a byte-order mark */
		d += 3, n -= 3;
	k = json_kind(d, n);
	if (k)
		return k == 1 ? &json : &ndjson;
	if (sample > TEXT_SAMPLE)
		sample = TEXT_SAMPLE;
	if (columns(d, sample, sample < n, '\t') >= 2)
		return &tsv;
	if (columns(d, sample, sample < n, ',') >= 2 || columns(d, sample, sample < n, ';') >= 2)
		return &csv;
	mk_errf(why, whylen,
	        "its text does not split into columns on ',', ';' or tabs the same way on "
	        "every line");
	return NULL;
}

/* ------------------------------------------------------------------ records */

static int uuid_ok(const char *s)
{
	size_t i;

	if (strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-'
		                                              : !isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/* The upload's public shape from a row of FILE_COLS (text results). */
static cJSON *file_json(const PGresult *r, int row)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "id", PQgetvalue(r, row, 0));
	cJSON_AddStringToObject(o, "name", PQgetvalue(r, row, 1));
	cJSON_AddStringToObject(o, "kind", PQgetvalue(r, row, 2));
	cJSON_AddStringToObject(o, "mime", PQgetvalue(r, row, 3));
	cJSON_AddNumberToObject(o, "bytes", strtod(PQgetvalue(r, row, 4), NULL));
	cJSON_AddStringToObject(o, "created_at", PQgetvalue(r, row, 5));
	return o;
}

static mk_err reply_file(const PGresult *r, cJSON **reply, char *err, size_t errlen)
{
	cJSON *o = cJSON_CreateObject(), *f = file_json(r, 0);

	if (!o || !f || !cJSON_AddItemToObject(o, "file", f)) {
		cJSON_Delete(o);
		cJSON_Delete(f);
		mk_errf(err, errlen, "out of memory");
		return MK_E_INTERNAL;
	}
	*reply = o;
	return MK_OK;
}

static mk_err no_file(const char *id, char *err, size_t errlen)
{
	mk_errf(err, errlen, "no file '%.64s'", id);
	return MK_E_NOT_FOUND;
}

/*
 * A display name: the last part of a path (browsers may send one), trimmed;
 * refused when empty or holding control characters.
 */
static int clean_name(const char *in, char *out, size_t outlen)
{
	const char *base = in;
	size_t n;

	for (const char *p = in; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	while (*base == ' ')
		base++;
	n = strlen(base);
	while (n && base[n - 1] == ' ')
		n--;
	if (n == 0 || n >= outlen)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)base[i] < 0x20 || base[i] == 0x7f)
			return -1;
	memcpy(out, base, n);
	out[n] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ ops */

static mk_err op_upload(exec_ops *x, const mk_env *req, PGconn *c, cJSON **reply, char *err,
                        size_t errlen)
{
	const char *b64 = mk_json_str(req->body, "data_b64");
	size_t b64len = strlen(b64), len;
	const file_kind *k;
	unsigned char *data;
	char name[256], why[160], sz[32];
	PGresult *r;
	mk_err e;

	if (clean_name(mk_json_str(req->body, "name"), name, sizeof(name)) != 0) {
		mk_errf(err, errlen, "'name' must be a file name without control characters");
		return MK_E_VALIDATION;
	}
	if ((long long)mk_b64_decoded_len(b64, b64len) > x->cfg->file_max ||
	    (long long)b64len / 4 * 3 > x->cfg->file_max + 2) {
		mk_errf(err, errlen, "'%s' is larger than EXECUTOR_FILE_MAX (%lld bytes)", name,
		        x->cfg->file_max);
		return MK_E_TOO_LARGE;
	}
	if (b64len == 0) {
		mk_errf(err, errlen, "'%s' is empty", name);
		return MK_E_VALIDATION;
	}
	data = mk_b64_decode(b64, b64len, &len);
	if (!data) {
		mk_errf(err, errlen, "'data_b64' is not valid base64");
		return MK_E_VALIDATION;
	}
	k = sniff(data, len, why, sizeof(why));
	if (!k) {
		free(data);
		mk_errf(err, errlen, "'%s' is not a file Mark can analyse (%s); " ACCEPTED, name,
		        why);
		return MK_E_UNSUPPORTED_MEDIA;
	}
	if (strcmp(k->kind, "parquet") == 0 && (e = exec_parquet_check(x, err, errlen)) != MK_OK) {
		free(data);
		return e;
	}
	snprintf(sz, sizeof(sz), "%zu", len);
	{
		const char *vals[6] = {req->caller.user_id, name, k->kind, k->mime,
		                       (const char *)data,  sz};
		int lens[6] = {0, 0, 0, 0, (int)len, 0};

		r = exec_bin(c,
		             "INSERT INTO uploads (owner_id, name, kind, mime, data, bytes) "
		             "VALUES ($1, $2, $3, $4, $5::bytea, $6::bigint) RETURNING " FILE_COLS,
		             6, vals, lens, 0, err, errlen);
	}
	free(data);
	if (!r)
		return MK_E_DB;
	e = reply_file(r, reply, err, errlen);
	PQclear(r);
	return e;
}

/* "<micros>|<uuid>" as an opaque base64url cursor, and back. */
static int cursor_parse(const char *cur, char micros[24], char id[37])
{
	char plain[96], *bar;
	size_t n = 0;

	if (sodium_base642bin((unsigned char *)plain, sizeof(plain) - 1, cur, strlen(cur), NULL, &n,
	                      NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return -1;
	plain[n] = '\0';
	if (memchr(plain, '\0', n) || !(bar = strchr(plain, '|')))
		return -1;
	*bar = '\0';
	if (!*plain || strlen(plain) >= 24 || strspn(plain, "0123456789") != strlen(plain) ||
	    !uuid_ok(bar + 1))
		return -1;
	snprintf(micros, 24, "%s", plain);
	snprintf(id, 37, "%s", bar + 1);
	return 0;
}

static mk_err op_list(const mk_env *req, PGconn *c, cJSON **reply, char *err, size_t errlen)
{
	const char *cur = mk_json_str(req->body, "cursor");
	char micros[24], id[37], lim[24], plain[96], next[160];
	const char *p[4] = {req->caller.user_id, NULL, NULL, lim};
	long long limit = PAGE_DEFAULT;
	cJSON *o, *items;
	PGresult *r;
	int i, n;

	mk_json_int(req->body, "limit", &limit);
	if (cur && *cur) {
		if (cursor_parse(cur, micros, id) != 0) {
			mk_errf(err, errlen, "invalid cursor");
			return MK_E_VALIDATION;
		}
		p[1] = micros;
		p[2] = id;
	}
	snprintf(lim, sizeof(lim), "%lld", limit + 1);
	/* One row more than the page tells whether another page follows. */
	r = mk_db_exec_prep(
	    c,
	    "SELECT " FILE_COLS " FROM uploads WHERE owner_id = $1 AND ($2::bigint IS NULL OR "
	    "(created_at, id) < (timestamptz 'epoch' + $2::bigint * interval '1 microsecond', "
	    "$3::uuid)) ORDER BY created_at DESC, id DESC LIMIT $4::int",
	    4, p, err, errlen, NULL);
	if (!r)
		return MK_E_DB;
	n = PQntuples(r);
	o = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(o, "items");
	for (i = 0; items && i < n && i < limit; i++)
		cJSON_AddItemToArray(items, file_json(r, i));
	if (n > limit) {
		snprintf(plain, sizeof(plain), "%s|%s", PQgetvalue(r, (int)limit - 1, 6),
		         PQgetvalue(r, (int)limit - 1, 0));
		sodium_bin2base64(next, sizeof(next), (const unsigned char *)plain, strlen(plain),
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		cJSON_AddStringToObject(o, "next_cursor", next);
	} else {
		cJSON_AddNullToObject(o, "next_cursor");
	}
	PQclear(r);
	if (!items) {
		cJSON_Delete(o);
		mk_errf(err, errlen, "out of memory");
		return MK_E_INTERNAL;
	}
	*reply = o;
	return MK_OK;
}

static mk_err op_get(const mk_env *req, PGconn *c, cJSON **reply, char *err, size_t errlen)
{
	const char *id = mk_json_str(req->body, "file_id");
	const char *p[2] = {id, req->caller.user_id};
	PGresult *r;
	mk_err e;

	if (!uuid_ok(id))
		return no_file(id, err, errlen);
	r = mk_db_exec_prep(
	    c, "SELECT " FILE_COLS " FROM uploads WHERE id = $1::uuid AND owner_id = $2", 2, p, err,
	    errlen, NULL);
	if (!r)
		return MK_E_DB;
	e = PQntuples(r) == 1 ? reply_file(r, reply, err, errlen) : no_file(id, err, errlen);
	PQclear(r);
	return e;
}

static mk_err op_delete(const mk_env *req, PGconn *c, cJSON **reply, char *err, size_t errlen)
{
	const char *id = mk_json_str(req->body, "file_id");
	const char *p[2] = {id, req->caller.user_id};
	PGresult *r;
	int gone;

	if (!uuid_ok(id))
		return no_file(id, err, errlen);
	r = mk_db_exec_prep(c, "DELETE FROM uploads WHERE id = $1::uuid AND owner_id = $2", 2, p,
	                    err, errlen, NULL);
	if (!r)
		return MK_E_DB;
	gone = strcmp(PQcmdTuples(r), "1") == 0;
	PQclear(r);
	if (!gone)
		return no_file(id, err, errlen);
	*reply = cJSON_CreateObject();
	if (*reply)
		cJSON_AddBoolToObject(*reply, "deleted", 1);
	return MK_OK;
}

/*
 * The workspace path of an upload named name: the name with separators
 * and control bytes replaced by '_', cut to 255 bytes on a character
 * boundary; "." and ".." become "_".
 */
static void safe_path(const char *name, char out[256])
{
	size_t n = strlen(name);

	if (n > 255) /* cut before the character that crosses byte 255 */
		for (n = 255; n && ((unsigned char)name[n] & 0xc0) == 0x80;)
			n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		out[i] = (ch < 0x20 || ch == 0x7f || ch == '/' || ch == '\\') ? '_' : (char)ch;
	}
	out[n] = '\0';
	if (n == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
		snprintf(out, 256, "_");
}

static mk_err op_attach(exec_ops *x, const mk_env *req, PGconn *c, cJSON **reply, char *err,
                        size_t errlen)
{
	const char *chat = mk_json_str(req->body, "chat_id");
	const char *id = mk_json_str(req->body, "file_id");
	const char *p[2] = {id, req->caller.user_id};
	char name[256], kind[16], path[256];
	PGresult *r;
	size_t len;
	mk_err e;
	int n;

	if (!uuid_ok(id))
		return no_file(id, err, errlen);
	r = exec_bin(c,
	             "SELECT name, kind, data FROM uploads WHERE id = $1::uuid AND owner_id = $2",
	             2, p, NULL, 1, err, errlen);
	if (!r)
		return MK_E_DB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return no_file(id, err, errlen);
	}
	/* Binary results: text columns are not NUL-terminated there. */
	n = PQgetlength(r, 0, 0);
	n = n < (int)sizeof(name) - 1 ? n : (int)sizeof(name) - 1;
	memcpy(name, PQgetvalue(r, 0, 0), (size_t)n);
	name[n] = '\0';
	n = PQgetlength(r, 0, 1);
	n = n < (int)sizeof(kind) - 1 ? n : (int)sizeof(kind) - 1;
	memcpy(kind, PQgetvalue(r, 0, 1), (size_t)n);
	kind[n] = '\0';
	len = (size_t)PQgetlength(r, 0, 2);
	safe_path(name, path);
	if (!exec_path_ok(path))
		snprintf(path, sizeof(path), "upload-%s", id);
	e = strcmp(kind, "parquet") == 0 ? exec_parquet_check(x, err, errlen) : MK_OK;
	if (e == MK_OK)
		e = exec_file_keep(x, req, c, chat, path, PQgetvalue(r, 0, 2), len, err, errlen);
	PQclear(r);
	if (e != MK_OK)
		return e;
	*reply = cJSON_CreateObject();
	if (*reply) {
		cJSON_AddStringToObject(*reply, "path", path);
		cJSON_AddNumberToObject(*reply, "bytes", (double)len);
		cJSON_AddStringToObject(*reply, "kind", kind);
	}
	return MK_OK;
}

mk_err exec_uploads_op(exec_ops *x, const mk_env *req, PGconn *c, cJSON **reply, char *err,
                       size_t errlen)
{
	switch (req->op) {
	case MK_OP_EXEC_UPLOAD: return op_upload(x, req, c, reply, err, errlen);
	case MK_OP_EXEC_UPLOADS: return op_list(req, c, reply, err, errlen);
	case MK_OP_EXEC_UPLOAD_GET: return op_get(req, c, reply, err, errlen);
	case MK_OP_EXEC_UPLOAD_DELETE: return op_delete(req, c, reply, err, errlen);
	case MK_OP_EXEC_ATTACH: return op_attach(x, req, c, reply, err, errlen);
	default:
		mk_errf(err, errlen, "operation '%s' is not an upload op", mk_op_name(req->op));
		return MK_E_UNKNOWN_OP;
	}
}
