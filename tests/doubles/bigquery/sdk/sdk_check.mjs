// sdk_check.mjs - is the BigQuery double faithful? Drive it with Google's
// official, unmodified Node.js client, @google-cloud/bigquery (version
// pinned in package.json), and check that the client decodes what the
// double sends into exactly the values of the double's fixture.
//
//   BQ_DOUBLE_URL=http://127.0.0.1:PORT BQ_KEY_FILE=key.json \
//       node tests/doubles/bigquery/sdk/sdk_check.mjs
//
// BQ_KEY_FILE is a service-account key for the fixture's project, its
// token_uri pointing at the double's /token. BQ_FIXTURE (default
// tests/data/bigquery/fixture.json) is the catalog the double serves.
// BQ_ONLY=<text> runs only the checks whose names start with it.
//
// The client is configured the way a deployment configures it: the key
// through GOOGLE_APPLICATION_CREDENTIALS, the API through `apiEndpoint`.
// One thing has to be bent: google-auth-library posts the JWT-bearer grant
// to Google's fixed token URL (and puts that URL in the JWT's aud), never
// to the key's token_uri. A request interceptor on the auth client's own
// transporter (gaxios' public hook) sends exactly that request to
// token_uri instead; any other request of the auth library that is not for
// the double fails the run. The last check uses no key at all: the client
// finds the double's metadata server through GCE_METADATA_HOST.
//
// Before each check the double's request log, faults and knobs are reset
// (POST /_double/reset); checks then inspect GET /_double/requests.
// Prints one line per check ("ok <name>" / "FAIL <name>: <why>") and a
// summary; exits 0 when all pass, 1 when one fails, 2 on bad usage.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
	BigQuery,
	BigQueryDate,
	BigQueryDatetime,
	BigQueryInt,
	BigQueryTime,
	BigQueryTimestamp,
	Geography,
} from '@google-cloud/bigquery';

const HERE = dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.BQ_DOUBLE_URL || '').replace(/\/+$/, '');
const KEY_FILE = process.env.BQ_KEY_FILE || '';
const FIXTURE_FILE = process.env.BQ_FIXTURE ||
	join(HERE, '..', '..', '..', 'data', 'bigquery', 'fixture.json');
if (!BASE || !KEY_FILE) {
	console.error('sdk_check: set BQ_DOUBLE_URL (http://127.0.0.1:PORT) and BQ_KEY_FILE ' +
		'(a service-account key whose token_uri is the double\'s /token)');
	process.exit(2);
}
const KEY = JSON.parse(readFileSync(KEY_FILE, 'utf8'));
const FIXTURE = JSON.parse(readFileSync(FIXTURE_FILE, 'utf8'));
const PROJECT = FIXTURE.project;
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
const BQ_SCOPE = 'https://www.googleapis.com/auth/bigquery';
const JWT_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ONLY = process.env.BQ_ONLY || '';

process.env.GOOGLE_APPLICATION_CREDENTIALS = KEY_FILE;
// Nothing from the environment may point the client elsewhere or name another project.
for (const v of ['BIGQUERY_EMULATOR_HOST', 'GCE_METADATA_HOST', 'GCE_METADATA_IP',
	'GOOGLE_CLOUD_PROJECT', 'GCLOUD_PROJECT', 'gcloud_project', 'google_cloud_project'])
	delete process.env[v];

// ---------------------------------------------------------------- the client

let tokenRequests = 0;
const strays = [];

// A client as an application makes it, with its token request sent to token_uri.
async function newClient() {
	const bq = new BigQuery({ apiEndpoint: BASE });
	const auth = await bq.authClient.getClient();
	auth.transporter.interceptors.request.add({
		resolved: async (opts) => {
			const url = String(opts.url);
			if (url === GOOGLE_TOKEN_URL) {
				tokenRequests++;
				opts.url = new URL(KEY.token_uri);
			} else if (!url.startsWith(BASE + '/')) {
				strays.push(url);
				throw new Error('sdk_check: the auth library tried to reach ' + url);
			}
			return opts;
		},
	});
	return { bq, auth };
}

// ---------------------------------------------------------------- the double

async function control(method, path, body) {
	const res = await fetch(BASE + path, {
		method,
		headers: body ? { 'content-type': 'application/json' } : {},
		body: body ? JSON.stringify(body) : undefined,
	});
	const text = await res.text();
	assert.equal(res.status, 200, `${method} ${path}: ${res.status} ${text}`);
	return JSON.parse(text);
}

const reset = () => control('POST', '/_double/reset');
const requests = () => control('GET', '/_double/requests');
const config = (c) => control('POST', '/_double/config', c);
const faults = (rules) => control('POST', '/_double/faults', { rules });

// The recorded requests of one route ("token", "jobs.query", ...).
const of = (reqs, route) => reqs.filter((r) => r.route === route);
const params = (r) => Object.fromEntries(new URLSearchParams(r.query ?? ''));

// Every BigQuery request of reqs carries the auth client's current token.
async function allBearer(reqs, auth) {
	const { token } = await auth.getAccessToken();
	const api = reqs.filter((r) => r.path.startsWith('/bigquery/v2/'));
	assert.ok(token && api.length > 0, 'a token and BigQuery requests');
	for (const r of api)
		assert.equal(r.authorization, 'Bearer ' + token, `${r.method} ${r.path} authorization`);
}

const b64json = (seg) => JSON.parse(Buffer.from(seg, 'base64url').toString('utf8'));

// ---------------------------------------------------------------- the fixture's values

const dataset = (id) => FIXTURE.datasets.find((d) => d.id === id);
const table = (ds, id) => dataset(ds).tables.find((t) => t.id === id);

// Decimal text without redundant zeros ("980.00" -> "980", "-0.50" -> "-0.5").
function decimal(s) {
	let [i, f = ''] = String(s).split('.');
	f = f.replace(/0+$/, '');
	i = i.replace(/^([-+]?)0+(?=\d)/, '$1').replace(/^\+/, '');
	return f ? `${i}.${f}` : i;
}

// A DATETIME or TIME without trailing zeros in its fraction ("10:00:00.250000" -> "10:00:00.25").
const civil = (s) => String(s).replace(' ', 'T').replace(/\.(\d*?)0+$/, (m, d) => (d ? '.' + d : ''));

// Microseconds since the epoch of "YYYY-MM-DD[T ]HH:MM:SS[.fff...](Z|+00:00| UTC)".
function micros(s) {
	const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]00:?00| UTC)?$/.exec(s);
	assert.ok(m, 'a timestamp: ' + s);
	const nanos = BigInt((m[3] ?? '').padEnd(9, '0'));
	assert.equal(nanos % 1000n, 0n, 'microsecond precision: ' + s);
	return BigInt(Date.parse(`${m[1]}T${m[2]}Z`)) * 1000n + nanos / 1000n;
}

// A fixture value of field, in the form `got` gives the client's value.
function want(field, v) {
	if (field.mode === 'REPEATED')
		return (v ?? []).map((x) => want({ ...field, mode: 'NULLABLE' }, x));
	if (v === null || v === undefined) return null;
	switch (field.type) {
	case 'INTEGER': case 'INT64': return BigInt(v).toString();
	case 'FLOAT': case 'FLOAT64': return Number(v);
	case 'NUMERIC': case 'BIGNUMERIC': return decimal(v);
	case 'BOOLEAN': case 'BOOL': return v;
	case 'TIMESTAMP': return micros(v);
	case 'DATETIME': case 'TIME': return civil(v);
	case 'JSON': return v;
	case 'RECORD': case 'STRUCT':
		return Object.fromEntries(field.fields.map((f, i) =>
			[f.name, want(f, Array.isArray(v) ? v[i] : v[f.name])]));
	default: return v; // STRING, BYTES (base64), DATE, GEOGRAPHY
	}
}

// The client's decoded value of field, checking it has the client's type for it.
function got(field, v, path) {
	if (field.mode === 'REPEATED') {
		assert.ok(Array.isArray(v), `${path} is an array: ${v}`);
		return v.map((x, i) => got({ ...field, mode: 'NULLABLE' }, x, `${path}[${i}]`));
	}
	if (v === null) return null;
	const is = (cls) => assert.ok(v instanceof cls, `${path} is a ${cls.name}: ${JSON.stringify(v)}`);
	const type = (t) => assert.equal(typeof v, t, `${path} is a ${t}`);
	switch (field.type) {
	case 'INTEGER': case 'INT64': is(BigQueryInt); return v.value;
	case 'FLOAT': case 'FLOAT64': type('number'); return v;
	case 'NUMERIC': case 'BIGNUMERIC':
		assert.equal(v?.constructor?.name, 'Big', `${path} is a Big`);
		return decimal(v.toFixed());
	case 'BOOLEAN': case 'BOOL': type('boolean'); return v;
	case 'STRING': type('string'); return v;
	case 'BYTES': assert.ok(Buffer.isBuffer(v), `${path} is a Buffer`); return v.toString('base64');
	case 'TIMESTAMP': is(BigQueryTimestamp); return micros(v.value);
	case 'DATE': is(BigQueryDate); return v.value;
	case 'DATETIME': is(BigQueryDatetime); return civil(v.value);
	case 'TIME': is(BigQueryTime); return civil(v.value);
	case 'GEOGRAPHY': is(Geography); return v.value;
	case 'JSON': type('string'); return JSON.parse(v);
	case 'RECORD': case 'STRUCT':
		type('object');
		assert.deepEqual(Object.keys(v), field.fields.map((f) => f.name), `${path}'s fields`);
		return Object.fromEntries(field.fields.map((f) => [f.name, got(f, v[f.name], `${path}.${f.name}`)]));
	default: assert.fail(`${path}: unexpected type ${field.type}`);
	}
}

// rows (decoded by the client) hold exactly the fixture rows of fields, in the same order
// when `ordered`, else in any order.
function sameRows(fields, rows, fixtureRows, { ordered = true, columns } = {}) {
	const all = columns ? columns.map((c) => fields.find((f) => f.name === c)) : fields;
	const pick = columns ? (row) => columns.map((c) => row[fields.findIndex((f) => f.name === c)]) : (row) => row;
	const exp = fixtureRows.map((row) => Object.fromEntries(all.map((f, i) => [f.name, want(f, pick(row)[i])])));
	const act = rows.map((row, n) => {
		assert.deepEqual(Object.keys(row), all.map((f) => f.name), `row ${n}'s columns`);
		return Object.fromEntries(all.map((f) => [f.name, got(f, row[f.name], `row ${n}.${f.name}`)]));
	});
	const key = (r) => JSON.stringify(r, (k, v) => (typeof v === 'bigint' ? String(v) : v));
	if (!ordered) {
		exp.sort((a, b) => key(a).localeCompare(key(b)));
		act.sort((a, b) => key(a).localeCompare(key(b)));
	}
	assert.equal(act.length, exp.length, 'row count');
	for (let i = 0; i < exp.length; i++)
		assert.deepEqual(act[i], exp[i], `row ${i}: got ${key(act[i])}, want ${key(exp[i])}`);
}

const ORDERS = table('shop', 'orders');
const ORDERS_COLS = ['id', 'customer_id', 'order_date', 'status', 'total'];
const ORDERS_SQL = `SELECT ${ORDERS_COLS.join(', ')} FROM shop.orders ORDER BY id`;
const ORDERS_ROWS = [...ORDERS.rows].sort((a, b) => (BigInt(a[0]) < BigInt(b[0]) ? -1 : 1));
const sameOrders = (rows) => sameRows(ORDERS.schema.fields, rows, ORDERS_ROWS, { columns: ORDERS_COLS });
const BIG_ID = '9007199254740993'; // 2^53 + 1: a double cannot hold it
const INVOICES_SQL = 'SELECT * FROM eu_sales.invoices ORDER BY invoice_id';

// ---------------------------------------------------------------- checks

const checks = [];
const check = (name, fn) => checks.push({ name, fn });
let client; // made by the first check, used by the others

check('auth: the JWT-bearer grant goes to token_uri and its token is the bearer', async () => {
	client = await newClient();
	await client.bq.getDatasets();
	assert.equal(tokenRequests, 1, 'one token request');
	const reqs = await requests();
	const tok = of(reqs, 'token');
	assert.equal(tok.length, 1, 'the double saw one token request');
	assert.equal(tok[0].method, 'POST');
	assert.equal(tok[0].path, new URL(KEY.token_uri).pathname);
	assert.equal(tok[0].authorization, null);
	const form = new URLSearchParams(tok[0].body);
	assert.equal(form.get('grant_type'), JWT_GRANT);
	const [h, c] = form.get('assertion').split('.');
	assert.equal(b64json(h).alg, 'RS256');
	const claims = b64json(c);
	assert.equal(claims.iss, KEY.client_email);
	assert.ok(claims.scope.split(' ').includes(BQ_SCOPE), 'scope ' + claims.scope);
	assert.ok(claims.exp - claims.iat <= 3600, 'a short-lived assertion');
	assert.ok(reqs.indexOf(tok[0]) < reqs.findIndex((r) => r.route === 'datasets.list'), 'token first');
	await allBearer(reqs, client.auth);
	assert.equal(of(reqs, 'datasets.list')[0].path, `/bigquery/v2/projects/${PROJECT}/datasets`);
});

check('datasets.list: the fixture\'s datasets of the key\'s project, with locations', async () => {
	const [datasets] = await client.bq.getDatasets();
	assert.deepEqual(datasets.map((d) => d.id), ['empty', 'eu_sales', 'shop', 'wide']);
	for (const d of datasets) {
		const fx = dataset(d.id);
		assert.equal(d.metadata.datasetReference.projectId, PROJECT);
		assert.equal(d.metadata.id, `${PROJECT}:${d.id}`);
		assert.equal(d.metadata.location, fx.location);
		assert.deepEqual(d.metadata.labels, fx.labels);
		assert.equal(d.metadata.friendlyName, fx.friendlyName);
	}
	const reqs = await requests();
	assert.equal(reqs.length, 1, 'the cached token is reused: ' + reqs.map((r) => r.route));
	assert.equal(params(reqs[0]).prettyPrint, 'false');
	const [md] = await client.bq.dataset('shop').getMetadata();
	assert.equal(md.description, dataset('shop').description);
});

check('tables.list: wide in pages of 3 (nextPageToken, pageToken); empty has none', async () => {
	const pages = [];
	let q = { maxResults: 3, autoPaginate: false };
	while (q) {
		const [tables, next] = await client.bq.dataset('wide').getTables(q);
		pages.push(tables.map((t) => t.id));
		assert.ok(pages.length <= 5, 'paging ends');
		q = next;
	}
	assert.deepEqual(pages, [['t01', 't02', 't03'], ['t04', 't05', 't06'], ['t07']]);
	const lists = of(await requests(), 'tables.list');
	assert.equal(lists.length, 3);
	assert.deepEqual(lists.map((r) => params(r).maxResults), ['3', '3', '3']);
	assert.equal(params(lists[0]).pageToken, undefined);
	assert.ok(params(lists[1]).pageToken && params(lists[2]).pageToken, 'pageToken sent');
	assert.notEqual(params(lists[1]).pageToken, params(lists[2]).pageToken);

	// Without maxResults the client pages by itself.
	const [all] = await client.bq.dataset('wide').getTables();
	assert.deepEqual(all.map((t) => t.id), dataset('wide').tables.map((t) => t.id));
	assert.equal(all[0].metadata.tableReference.datasetId, 'wide');
	const [shop] = await client.bq.dataset('shop').getTables();
	assert.deepEqual(shop.map((t) => [t.id, t.metadata.type]),
		dataset('shop').tables.map((t) => [t.id, t.type]));
	const [none] = await client.bq.dataset('empty').getTables();
	assert.deepEqual(none, []);
});

check('tables.get: shop.events has the fixture\'s nested schema; a view its query', async () => {
	const fx = table('shop', 'events');
	const [md] = await client.bq.dataset('shop').table('events').getMetadata();
	assert.deepEqual(md.tableReference, { projectId: PROJECT, datasetId: 'shop', tableId: 'events' });
	assert.equal(md.type, 'TABLE');
	assert.equal(md.numRows, String(fx.rows.length), 'numRows is an int64 string');
	const norm = (fields) => fields.map((f) => ({
		name: f.name, type: f.type, mode: f.mode ?? 'NULLABLE', description: f.description,
		...(f.fields ? { fields: norm(f.fields) } : {}),
	}));
	assert.deepEqual(norm(md.schema.fields), norm(fx.schema.fields));
	const items = md.schema.fields.find((f) => f.name === 'items');
	assert.deepEqual([items.type, items.mode], ['RECORD', 'REPEATED']);
	const tags = items.fields.find((f) => f.name === 'tags');
	assert.deepEqual([tags.type, tags.mode], ['STRING', 'REPEATED']);
	assert.equal(items.fields.find((f) => f.name === 'price').type, 'RECORD');
	assert.equal(of(await requests(), 'tables.get')[0].path,
		`/bigquery/v2/projects/${PROJECT}/datasets/shop/tables/events`);
	const [view] = await client.bq.dataset('shop').table('customer_totals').getMetadata();
	assert.equal(view.type, 'VIEW');
	assert.equal(view.view?.query, table('shop', 'customer_totals').view.query);
});

check('jobs.query: shop.orders decodes to the fixture, id 2^53+1 intact (wrapIntegers)', async () => {
	const [rows] = await client.bq.query({ query: ORDERS_SQL, useLegacySql: false, wrapIntegers: true });
	sameOrders(rows);
	assert.ok(rows.some((r) => r.id.value === BIG_ID), 'id ' + BIG_ID);
	const q = of(await requests(), 'jobs.query');
	assert.equal(q.length, 1);
	assert.equal(q[0].path, `/bigquery/v2/projects/${PROJECT}/queries`);
	assert.equal(q[0].body.query, ORDERS_SQL);
	assert.equal(q[0].body.useLegacySql, false);
	assert.equal(q[0].body.formatOptions?.useInt64Timestamp, true);
	assert.ok(q[0].body.requestId, 'requestId');
});

check('jobs.query: shop.events nested values decode to the fixture (arrays, records, NULLs)', async () => {
	const fx = table('shop', 'events');
	const [rows] = await client.bq.query({ query: 'SELECT * FROM shop.events ORDER BY event_id', wrapIntegers: true });
	sameRows(fx.schema.fields, rows, fx.rows);
	// Spelled out, for the reader: the first event's first item.
	assert.deepEqual(rows[0].items[0].tags, ['new', 'sale']);
	assert.equal(rows[0].items[0].price.currency, 'EUR');
	assert.equal(rows[0].items[1].price, null);
	assert.ok(rows[0].occurred_at instanceof BigQueryTimestamp);
	assert.deepEqual(rows[1].items, []);
});

check('jobs.query: every other fixture table round-trips through the client', async () => {
	for (const ds of FIXTURE.datasets) {
		for (const t of ds.tables) {
			if (t.type !== 'TABLE' || (ds.id === 'shop' && ['orders', 'events'].includes(t.id))) continue;
			const [rows] = await client.bq.query({
				query: `SELECT * FROM ${ds.id}.${t.id}`, location: ds.location, wrapIntegers: true,
			});
			try {
				sameRows(t.schema.fields, rows, t.rows ?? [], { ordered: false });
			} catch (e) {
				e.message = `${ds.id}.${t.id}: ${e.message}`;
				throw e;
			}
		}
	}
});

check('jobs.insert + getQueryResults: the same orders; job id and location sent back', async () => {
	const [job] = await client.bq.createQueryJob({ query: ORDERS_SQL, location: 'US' });
	const [rows] = await job.getQueryResults({ wrapIntegers: true });
	sameOrders(rows);
	const reqs = await requests();
	const ins = of(reqs, 'jobs.insert');
	assert.equal(ins.length, 1);
	assert.equal(ins[0].body.configuration.query.query, ORDERS_SQL);
	assert.equal(ins[0].body.configuration.query.useLegacySql, false);
	assert.equal(ins[0].body.jobReference.jobId, job.id);
	const gqr = of(reqs, 'jobs.getQueryResults');
	assert.ok(gqr.length >= 1);
	assert.equal(gqr[0].path, `/bigquery/v2/projects/${PROJECT}/queries/${job.id}`);
	assert.equal(params(gqr[0]).location, 'US');
	assert.equal(params(gqr[0])['formatOptions.useInt64Timestamp'], 'true');
});

check('paging: query results in pages of 4 through pageToken', async () => {
	// jobs.query answers 4 rows and a pageToken; the client asks for the rest (no maxResults).
	const [rows] = await client.bq.query({ query: ORDERS_SQL, maxResults: 4, wrapIntegers: true });
	sameOrders(rows);
	let reqs = await requests();
	assert.equal(of(reqs, 'jobs.query')[0].body.maxResults, 4);
	let more = of(reqs, 'jobs.getQueryResults');
	assert.equal(more.length, 1, 'one request for the rest');
	assert.ok(params(more[0]).pageToken, 'pageToken sent');

	// getQueryResults page by page.
	const [job] = await client.bq.createQueryJob({ query: ORDERS_SQL, location: 'US' });
	const pages = [];
	let q = { maxResults: 4, autoPaginate: false, wrapIntegers: true };
	while (q) {
		const [page, next] = await job.getQueryResults(q);
		pages.push(page);
		assert.ok(pages.length <= 10, 'paging ends');
		q = next;
	}
	assert.deepEqual(pages.map((p) => p.length), [4, 4, 4, 3]);
	sameOrders(pages.flat());
	reqs = await requests();
	more = of(reqs, 'jobs.getQueryResults').slice(1);
	assert.equal(more.length, 4);
	assert.deepEqual(more.map((r) => params(r).maxResults), ['4', '4', '4', '4']);
	assert.equal(params(more[0]).pageToken, undefined);
	assert.ok(more.slice(1).every((r) => params(r).pageToken), 'pageToken on pages 2..4');
});

check('jobComplete:false twice, then the client polls to the result', async () => {
	await config({ incomplete_polls: 2 });
	const [rows] = await client.bq.query({ query: ORDERS_SQL, wrapIntegers: true });
	sameOrders(rows);
	const reqs = await requests();
	assert.equal(of(reqs, 'jobs.query').length, 1);
	assert.ok(of(reqs, 'jobs.getQueryResults').length >= 2, 'polled: ' + reqs.map((r) => r.route));
});

check('dry run: jobs.insert with dryRun gives statistics.totalBytesProcessed', async () => {
	const [job, resp] = await client.bq.createQueryJob({ query: ORDERS_SQL, dryRun: true });
	const md = resp ?? job.metadata;
	assert.match(md.statistics.totalBytesProcessed, /^\d+$/, 'an int64 string');
	assert.ok(BigInt(md.statistics.totalBytesProcessed) > 0n);
	assert.equal(md.status?.state, 'DONE');
	assert.deepEqual(md.statistics.query?.schema?.fields?.map((f) => f.name), ORDERS_COLS);
	const reqs = await requests();
	assert.equal(of(reqs, 'jobs.insert')[0].body.configuration.dryRun, true);
	assert.equal(of(reqs, 'jobs.getQueryResults').length, 0, 'nothing to fetch');
	const [none] = await client.bq.query({ query: ORDERS_SQL, dryRun: true });
	assert.deepEqual(none, []);
});

check('location: eu_sales.invoices runs in europe-west2, and only there', async () => {
	const fx = table('eu_sales', 'invoices');
	const [rows] = await client.bq.query({ query: INVOICES_SQL, location: 'europe-west2' });
	sameRows(fx.schema.fields, rows, fx.rows, { ordered: false });
	const [job] = await client.bq.createQueryJob({ query: INVOICES_SQL, location: 'europe-west2' });
	assert.equal(job.location, 'europe-west2');
	const [again] = await job.getQueryResults();
	sameRows(fx.schema.fields, again, fx.rows, { ordered: false });
	const reqs = await requests();
	assert.equal(of(reqs, 'jobs.query')[0].body.location, 'europe-west2');
	assert.equal(of(reqs, 'jobs.insert')[0].body.jobReference.location, 'europe-west2');
	assert.equal(params(of(reqs, 'jobs.getQueryResults').at(-1)).location, 'europe-west2');
	await assert.rejects(client.bq.query({ query: INVOICES_SQL, location: 'US' }),
		(e) => e.code === 404 && e.errors?.[0]?.reason === 'notFound');
});

check('errors: notFound and invalidQuery arrive as the client\'s ApiError', async () => {
	await assert.rejects(client.bq.dataset('shop').table('nope').getMetadata(),
		(e) => e.code === 404 && e.errors?.[0]?.reason === 'notFound');
	await assert.rejects(client.bq.query({ query: 'SELECT id FROM shop.nope' }),
		(e) => e.code === 404 && e.errors?.[0]?.reason === 'notFound');
	await assert.rejects(client.bq.query({ query: 'SELEC 1' }),
		(e) => e.code === 400 && e.errors?.[0]?.reason === 'invalidQuery');
});

check('retries: 503 backendError and 403 rateLimitExceeded are retried, accessDenied not', async () => {
	await faults([{ route: 'datasets.list', times: 1, status: 503 },
		{ route: 'tables.get', times: 1, status: 403, reason: 'rateLimitExceeded' }]);
	const [datasets] = await client.bq.getDatasets();
	assert.equal(datasets.length, FIXTURE.datasets.length);
	const [md] = await client.bq.dataset('shop').table('events').getMetadata();
	assert.equal(md.tableReference.tableId, 'events');
	let reqs = await requests();
	assert.equal(of(reqs, 'datasets.list').length, 2);
	assert.equal(of(reqs, 'tables.get').length, 2);
	await faults([{ route: 'datasets.list', times: 1, status: 403, reason: 'accessDenied' }]);
	await assert.rejects(client.bq.getDatasets(),
		(e) => e.code === 403 && e.errors?.[0]?.reason === 'accessDenied');
	reqs = await requests();
	assert.equal(of(reqs, 'datasets.list').length, 3, 'accessDenied was not retried');
});

check('token expiry: a short-lived token is replaced before it is used again', async () => {
	await config({ expires_in: 60 }); // inside the library's 5-minute refresh margin
	const fresh = await newClient();
	const before = tokenRequests;
	await fresh.bq.getDatasets();
	await fresh.bq.getDatasets();
	assert.equal(tokenRequests - before, 2, 'a new token for each call');
	const reqs = await requests();
	assert.equal(of(reqs, 'token').length, 2);
	const [a, b] = of(reqs, 'datasets.list').map((r) => r.authorization);
	assert.match(a, /^Bearer \S+$/);
	assert.match(b, /^Bearer \S+$/);
	assert.notEqual(a, b, 'each call used its own token');
});

check('metadata server: with no key the client takes its token from GCE_METADATA_HOST', async () => {
	const saved = { ...process.env };
	// An empty gcloud configuration: no credentials file, and no project for the
	// library's `gcloud config config-helper` probe to find where gcloud is installed.
	const gcloud = mkdtempSync(join(tmpdir(), 'mark-bq-gcloud-'));
	delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
	process.env.CLOUDSDK_CONFIG = gcloud;
	process.env.GCE_METADATA_HOST = new URL(BASE).host;
	try {
		const bq = new BigQuery({ apiEndpoint: BASE });
		const [datasets] = await bq.getDatasets();
		assert.equal(datasets.length, FIXTURE.datasets.length);
		const reqs = await requests();
		assert.equal(of(reqs, 'token').length, 0, 'no JWT grant');
		const mt = of(reqs, 'metadata.token');
		assert.equal(mt.length, 1);
		assert.equal(mt[0].path, '/computeMetadata/v1/instance/service-accounts/default/token');
		assert.equal(params(mt[0]).scopes, BQ_SCOPE);
		const list = of(reqs, 'datasets.list');
		assert.equal(list[0].path, `/bigquery/v2/projects/${PROJECT}/datasets`, 'project from the metadata server');
		const { token } = await (await bq.authClient.getClient()).getAccessToken();
		assert.equal(list[0].authorization, 'Bearer ' + token);
	} finally {
		for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
		Object.assign(process.env, saved);
		rmSync(gcloud, { recursive: true, force: true });
	}
});

// ---------------------------------------------------------------- run

const version = (pkg) => JSON.parse(readFileSync(join(HERE, 'node_modules', pkg, 'package.json'), 'utf8')).version;
let failed = 0, ran = 0;
for (const { name, fn } of checks) {
	if (!name.startsWith(ONLY)) continue;
	ran++;
	try {
		await reset();
		if (!client && fn !== checks[0].fn) client = await newClient(); // the first was left out
		await fn();
		if (strays.length) throw new Error('stray requests: ' + strays.splice(0).join(', '));
		console.log(`ok ${name}`);
	} catch (e) {
		failed++;
		console.log(`FAIL ${name}: ${String(e?.message ?? e).replace(/\s+/g, ' ').slice(0, 800)}`);
	}
}
console.log(`sdk_check: ${ran - failed} of ${ran} checks passed ` +
	`(@google-cloud/bigquery ${version('@google-cloud/bigquery')}, google-auth-library ` +
	`${version('google-auth-library')}, node ${process.version})`);
process.exit(failed || !ran ? 1 : 0);
