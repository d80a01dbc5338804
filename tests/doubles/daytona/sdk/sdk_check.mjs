// sdk_check.mjs - is the Daytona double faithful? Drive it with Daytona's
// official, unmodified TypeScript SDK, @daytonaio/sdk (version pinned in
// package.json), the way an application does, and check that what the SDK
// makes of the double's answers is what the contract says: sandboxes that
// start, stop, archive and go; Python and shell commands that really run;
// files that go in and come back byte for byte; sessions; errors of the
// SDK's own classes.
//
//   DAYTONA_DOUBLE_URL=http://127.0.0.1:PORT DAYTONA_API_KEY=KEY \
//       node tests/doubles/daytona/sdk/sdk_check.mjs
//
// The SDK gets apiUrl (<double>/api), apiKey and target, nothing else; it
// finds the toolbox through the sandboxes' toolboxProxyUrl. Its Socket.IO
// event stream is refused by the double (it has none), so the SDK polls,
// as it does whenever events are unavailable. DAYTONA_ONLY=<text> runs only
// the checks whose names start with it.
//
// Before each check the double's request log, faults and knobs are reset
// (POST /_double/reset); checks then inspect GET /_double/requests. Prints
// one line per check ("ok <name>" / "FAIL <name>: <why>") and a summary;
// exits 0 when all pass, 1 when one fails, 2 on bad usage.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
	Daytona,
	DaytonaAuthenticationError,
	DaytonaBadGatewayError,
	DaytonaConflictError,
	DaytonaError,
	DaytonaFileNotFoundError,
	DaytonaNotFoundError,
	DaytonaRateLimitError,
	DaytonaTimeoutError,
} from '@daytonaio/sdk';

const HERE = dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.DAYTONA_DOUBLE_URL || '').replace(/\/+$/, '');
const KEY = process.env.DAYTONA_API_KEY || '';
const ONLY = process.env.DAYTONA_ONLY || '';
if (!BASE || !KEY) {
	console.error('sdk_check: set DAYTONA_DOUBLE_URL (http://127.0.0.1:PORT) and DAYTONA_API_KEY');
	process.exit(2);
}
// Nothing from the environment may point the SDK elsewhere.
for (const v of Object.keys(process.env))
	if (v.startsWith('DAYTONA_')) delete process.env[v];

const SDK_VERSION = JSON.parse(
	readFileSync(join(HERE, 'node_modules', '@daytonaio', 'sdk', 'package.json'), 'utf8')).version;
const config = (extra = {}) => ({ apiKey: KEY, apiUrl: BASE + '/api', target: 'us', ...extra });
const daytona = new Daytona(config());
const LABEL = { 'mark-sdk-check': String(process.pid) };

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
const faults = (rules) => control('POST', '/_double/faults', { rules });
const knobs = (c) => control('POST', '/_double/config', c);
// The double's live sandboxes made by this run.
const live = async () => (await control('GET', '/_double/sandboxes'))
	.filter((s) => s.labels['mark-sdk-check'] === LABEL['mark-sdk-check']);
const of = (reqs, route) => reqs.filter((r) => r.route === route);

// Poll get() until the sandbox is in state (generous: a loaded machine is slow).
async function until(id, state, seconds = 90) {
	const end = Date.now() + seconds * 1000;
	for (;;) {
		const s = await daytona.get(id);
		if (s.state === state) return s;
		assert.ok(Date.now() < end, `sandbox ${id} still ${s.state}, want ${state}`);
		await new Promise((r) => setTimeout(r, 100));
	}
}

// The error fn throws (assert.rejects, keeping the error for more checks).
async function rejection(fn) {
	try {
		await fn();
	} catch (e) {
		return e;
	}
	assert.fail('no error');
}

// ---------------------------------------------------------------- the checks

const checks = [];
const check = (name, fn) => checks.push({ name, fn });
let sandbox; // made by the first check, used by the next ones, deleted by the last

check('create: the sandbox is created, polled until started, and points at the toolbox', async () => {
	sandbox = await daytona.create({
		labels: LABEL,
		envVars: { MARK_GREETING: 'hello from the env' },
		autoStopInterval: 30,
		autoArchiveInterval: 60,
		autoDeleteInterval: 120,
		networkBlockAll: true,
		networkAllowList: '10.0.0.0/8,192.168.1.0/24',
	}, { timeout: 120 });
	assert.equal(sandbox.state, 'started');
	assert.match(sandbox.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
	assert.equal(sandbox.toolboxProxyUrl, BASE + '/toolbox');
	assert.equal(sandbox.labels['code-toolbox-language'], 'python', 'the SDK adds the language label');
	assert.equal(sandbox.labels['mark-sdk-check'], LABEL['mark-sdk-check']);
	assert.equal(sandbox.autoStopInterval, 30);
	assert.equal(sandbox.autoArchiveInterval, 60);
	assert.equal(sandbox.autoDeleteInterval, 120);
	assert.equal(sandbox.networkBlockAll, true);
	assert.equal(sandbox.networkAllowList, '10.0.0.0/8,192.168.1.0/24');
	assert.equal(sandbox.snapshot, 'daytona-small');
	assert.equal(sandbox.user, 'daytona');
	assert.deepEqual(sandbox.env, { MARK_GREETING: 'hello from the env' });
	const reqs = await requests();
	const [create] = of(reqs, 'sandbox.create');
	assert.ok(create, 'one create request');
	assert.equal(create.headers.authorization, 'Bearer ' + KEY);
	assert.equal(create.headers['x-daytona-sdk-version'], SDK_VERSION);
	assert.equal(create.body.target, 'us');
	assert.ok(of(reqs, 'sandbox.get').length >= 1, 'the SDK polled the sandbox until started');
	assert.equal(of(reqs, 'sandbox.toolbox-proxy-url').length, 0, 'the URL came in the Sandbox object');
	assert.equal(await sandbox.getUserHomeDir(), '/home/daytona');
	assert.equal(await sandbox.getWorkDir(), '/home/daytona');
});

check('codeRun: Python runs in the sandbox; output, exit code, argv and env come back', async () => {
	const ok = await sandbox.process.codeRun(
		'import os, sys\nimport pandas as pd\n' +
		'df = pd.DataFrame({"n": [1, 2, 3]})\n' +
		'print("sum", int(df["n"].sum()))\n' +
		'print("argv", sys.argv[1:])\n' +
		'print("env", os.environ["MARK_GREETING"], os.environ["EXTRA"])\n' +
		'print("cwd", os.getcwd(), "user", os.getuid())\n',
		{ argv: ['one', 'two'], env: { EXTRA: 'x' } });
	assert.equal(ok.exitCode, 0, ok.result);
	assert.equal(ok.result,
		"sum 6\nargv ['one', 'two']\nenv hello from the env x\ncwd /home/daytona user 1000\n");
	assert.equal(ok.artifacts.stdout, ok.result);
	assert.deepEqual(ok.artifacts.charts, []);
	const bad = await sandbox.process.codeRun('print("before")\nraise ValueError("boom")\n');
	assert.equal(bad.exitCode, 1);
	assert.match(bad.result, /^before\n[\s\S]*ValueError: boom/);
	// The network is not there, whatever the sandbox's settings say.
	const net = await sandbox.process.codeRun(
		'import socket\ntry:\n    socket.create_connection(("1.1.1.1", 53), timeout=3)\n' +
		'    print("online")\nexcept OSError as e:\n    print("offline")\n');
	assert.equal(net.result, 'offline\n');
	const [req] = of(await requests(), 'process.code-run');
	assert.equal(req.body.language, 'python');
	assert.equal(req.path, `/toolbox/${sandbox.id}/process/code-run`);
});

check('codeRun: a timeout is DaytonaTimeoutError and kills the run', async () => {
	const e = await rejection(() => sandbox.process.codeRun('import time\ntime.sleep(60)\n', {}, 1));
	assert.ok(e instanceof DaytonaTimeoutError, `${e?.constructor?.name}: ${e?.message}`);
	assert.equal(e.statusCode, 408);
	assert.equal(e.code, 'REQUEST_TIMEOUT');
});

check('executeCommand: a shell command runs with its exit code, cwd and env', async () => {
	const r = await sandbox.process.executeCommand(
		'echo "$FOO $MARK_GREETING"; pwd; echo oops >&2; whoami; exit 3', '/tmp', { FOO: 'bar' });
	assert.equal(r.exitCode, 3);
	assert.equal(r.result, 'bar hello from the env\n/tmp\noops\ndaytona\n');
	assert.equal(r.artifacts.stdout, r.result);
	const big = await sandbox.process.executeCommand('python3 -c "print(\'x\' * 200000)" | wc -c');
	assert.equal(big.result.trim(), '200001');
	const [req] = of(await requests(), 'process.execute');
	assert.equal(req.body.cwd, '/tmp');
	assert.deepEqual(req.body.envs, { FOO: 'bar' });
});

check('files: uploads come back byte for byte and code sees them', async () => {
	const bytes = Buffer.from([0, 1, 2, 255, 254, 10, 13, 0x2d, 0x2d]);
	await sandbox.fs.uploadFile(bytes, 'data/raw.bin');
	await sandbox.fs.uploadFile(Buffer.from('a,b\n1,2\n3,4\n'), '/home/daytona/data/t.csv');
	const local = mkdtempSync(join(tmpdir(), 'mark-daytona-sdk-'));
	try {
		writeFileSync(join(local, 'from-disk.txt'), 'from the local disk\n');
		await sandbox.fs.uploadFile(join(local, 'from-disk.txt'), '/tmp/from-disk.txt');
		assert.deepEqual(await sandbox.fs.downloadFile('data/raw.bin'), bytes);
		await sandbox.fs.downloadFile('/tmp/from-disk.txt', join(local, 'back.txt'));
		assert.equal(readFileSync(join(local, 'back.txt'), 'utf8'), 'from the local disk\n');
	} finally {
		rmSync(local, { recursive: true, force: true });
	}
	const r = await sandbox.process.codeRun(
		'import pandas as pd\nprint(int(pd.read_csv("data/t.csv")["b"].sum()))\n' +
		'open("/home/daytona/data/out.txt", "w").write("written by code")\n');
	assert.equal(r.result, '6\n');
	assert.equal((await sandbox.fs.downloadFile('/home/daytona/data/out.txt')).toString(),
		'written by code');
	const names = (await sandbox.fs.listFiles('/home/daytona/data')).map((f) => f.name).sort();
	assert.deepEqual(names, ['out.txt', 'raw.bin', 't.csv']);
	const info = await sandbox.fs.getFileDetails('data/raw.bin');
	assert.equal(info.size, bytes.length);
	assert.equal(info.isDir, false);
	await sandbox.fs.deleteFile('data/raw.bin');
	const gone = await rejection(() => sandbox.fs.downloadFile('data/raw.bin'));
	assert.ok(gone instanceof DaytonaFileNotFoundError, `${gone?.constructor?.name}: ${gone?.message}`);
	assert.ok(gone instanceof DaytonaNotFoundError);
	const reqs = await requests();
	const up = of(reqs, 'files.bulk-upload');
	assert.equal(up.length, 3, 'every upload is one bulk-upload');
	assert.match(up[0].headers['content-type'], /^multipart\/form-data; boundary=/);
	assert.ok(of(reqs, 'files.bulk-download').length >= 3, 'downloads are bulk-downloads');
});

check('sessions: shell state carries over; async commands are polled and their logs split', async () => {
	await sandbox.process.createSession('work');
	const first = await sandbox.process.executeSessionCommand('work',
		{ command: 'export A=1; cd /tmp; echo out; echo err >&2' });
	assert.equal(first.exitCode, 0);
	assert.equal(first.stdout, 'out\n');
	assert.equal(first.stderr, 'err\n');
	const second = await sandbox.process.executeSessionCommand('work', { command: 'echo $A; pwd' });
	assert.equal(second.stdout, '1\n/tmp\n');
	const run = await sandbox.process.executeSessionCommand('work',
		{ command: 'sleep 1; echo later; echo warn >&2; false', runAsync: true });
	assert.ok(run.cmdId, 'an async command has an id');
	assert.equal(run.exitCode, undefined);
	const end = Date.now() + 90000;
	let cmd;
	do {
		cmd = await sandbox.process.getSessionCommand('work', run.cmdId);
		if (cmd.exitCode === undefined || cmd.exitCode === null) {
			assert.ok(Date.now() < end, 'the async command never finished');
			await new Promise((r) => setTimeout(r, 200));
		}
	} while (cmd.exitCode === undefined || cmd.exitCode === null);
	assert.equal(cmd.exitCode, 1);
	const logs = await sandbox.process.getSessionCommandLogs('work', run.cmdId);
	assert.equal(logs.stdout, 'later\n');
	assert.equal(logs.stderr, 'warn\n');
	const s = await sandbox.process.getSession('work');
	assert.equal(s.commands.length, 3);
	assert.ok((await sandbox.process.listSessions()).some((x) => x.sessionId === 'work'));
	await sandbox.process.deleteSession('work');
	const e = await rejection(() => sandbox.process.getSession('work'));
	assert.ok(e instanceof DaytonaNotFoundError, `${e?.constructor?.name}`);
});

check('lifecycle: stop, start, archive and start again keep the files', async () => {
	await sandbox.stop();
	assert.equal(sandbox.state, 'stopped');
	const e = await rejection(() => sandbox.process.executeCommand('true'));
	assert.ok(e instanceof DaytonaError && e.statusCode === 400, `${e?.constructor?.name} ${e?.statusCode}`);
	assert.match(e.message, /Is the Sandbox started\?/);
	await sandbox.start();
	assert.equal(sandbox.state, 'started');
	await sandbox.stop();
	await sandbox.archive();
	await until(sandbox.id, 'archived');
	await sandbox.refreshData();
	assert.equal(sandbox.state, 'archived');
	await sandbox.start(120);
	assert.equal(sandbox.state, 'started');
	const r = await sandbox.process.executeCommand('cat data/t.csv | wc -l');
	assert.equal(r.result.trim(), '3', 'the files outlive stop and archive');
	const reqs = await requests();
	assert.equal(of(reqs, 'sandbox.stop').length, 2);
	assert.equal(of(reqs, 'sandbox.start').length, 2);
	assert.equal(of(reqs, 'sandbox.archive').length, 1);
});

check('list: the sandbox is found by its label, and only it', async () => {
	const found = [];
	for await (const s of daytona.list({ labels: LABEL })) found.push(s.id);
	assert.deepEqual(found, [sandbox.id]);
	const none = [];
	for await (const s of daytona.list({ labels: { 'mark-sdk-check': 'nobody' } })) none.push(s.id);
	assert.deepEqual(none, []);
	const [req] = of(await requests(), 'sandbox.list');
	assert.equal(new URLSearchParams(req.query).get('labels'), JSON.stringify(LABEL));
});

check('errors: a wrong key, an unknown sandbox and a transition clash have their classes', async () => {
	const wrong = new Daytona(config({ apiKey: 'dtn_wrong' }));
	try {
		const e = await rejection(() => wrong.get(sandbox.id));
		assert.ok(e instanceof DaytonaAuthenticationError, `${e?.constructor?.name}`);
		assert.equal(e.statusCode, 401);
	} finally {
		await wrong[Symbol.asyncDispose]();
	}
	const nf = await rejection(() => daytona.get('00000000-0000-4000-8000-000000000000'));
	assert.ok(nf instanceof DaytonaNotFoundError, `${nf?.constructor?.name}`);
	assert.match(nf.message, /^Sandbox with ID or name 00000000-0000-4000-8000-000000000000 not found$/);
	// Stopping twice: the second call meets the first one's transition (made
	// to last; the knob set back ends it at once).
	await knobs({ stop_delay_ms: 3600000 });
	const s = await daytona.get(sandbox.id);
	await daytona['sandboxApi'].stopSandbox(s.id);
	const clash = await rejection(() => daytona['sandboxApi'].stopSandbox(s.id));
	assert.ok(clash instanceof DaytonaConflictError, `${clash?.constructor?.name}`);
	assert.equal(clash.message, 'Sandbox state change in progress');
	await knobs({ stop_delay_ms: 200 });
	await until(sandbox.id, 'stopped');
	await sandbox.start();
});

check('faults: a 429 on create is DaytonaRateLimitError with the bucket\'s headers', async () => {
	await faults([{ route: 'sandbox.create', status: 429, retry_after: 7 }]);
	const e = await rejection(() => daytona.create({ labels: LABEL }));
	assert.ok(e instanceof DaytonaRateLimitError, `${e?.constructor?.name}: ${e?.message}`);
	assert.equal(e.statusCode, 429);
	assert.equal(e.message, 'ThrottlerException: Too Many Requests');
	assert.equal(e.headers['retry-after-sandbox-create'], '7');
	assert.equal(e.headers['x-ratelimit-remaining-sandbox-create'], '0');
	assert.equal((await live()).length, 1, 'nothing was created');
});

check('faults: a bare 502 from the toolbox is DaytonaBadGatewayError; the next call works', async () => {
	await faults([{ route: 'process.execute', status: 502 }]);
	const e = await rejection(() => sandbox.process.executeCommand('echo hi'));
	assert.ok(e instanceof DaytonaBadGatewayError, `${e?.constructor?.name}: ${e?.message}`);
	assert.equal(e.statusCode, 502);
	assert.equal((await sandbox.process.executeCommand('echo hi')).result, 'hi\n');
});

check('slow start: create waits out a start delay set at runtime', async () => {
	await knobs({ start_delay_ms: 2500 });
	const slow = await daytona.create({ labels: LABEL, ephemeral: true }, { timeout: 120 });
	try {
		assert.equal(slow.state, 'started');
		assert.equal(slow.autoDeleteInterval, 0, 'ephemeral is autoDeleteInterval 0');
		assert.equal((await slow.process.executeCommand('echo up')).result, 'up\n');
	} finally {
		await slow.delete(60, true);
	}
	const e = await rejection(() => daytona.get(slow.id));
	assert.ok(e instanceof DaytonaNotFoundError, 'deleted and waited for: gone');
});

check('delete: the sandbox goes, its processes and files with it', async () => {
	await sandbox.process.createSession('left-running');
	await sandbox.process.executeSessionCommand('left-running', { command: 'sleep 600', runAsync: true });
	await sandbox.delete();
	const end = Date.now() + 90000;
	for (;;) {
		try {
			await daytona.get(sandbox.id);
		} catch (e) {
			assert.ok(e instanceof DaytonaNotFoundError, `${e?.constructor?.name}`);
			break;
		}
		assert.ok(Date.now() < end, 'the sandbox was never destroyed');
		await new Promise((r) => setTimeout(r, 100));
	}
	assert.deepEqual(await live(), [], 'no sandbox is left');
});

// ---------------------------------------------------------------- run

let failed = 0, ran = 0;
for (const { name, fn } of checks) {
	if (!name.startsWith(ONLY)) continue;
	ran++;
	try {
		await reset();
		if (!sandbox && fn !== checks[0].fn) await checks[0].fn(); // the first was left out
		await fn();
		console.log(`ok ${name}`);
	} catch (e) {
		failed++;
		console.log(`FAIL ${name}: ${String(e?.stack ?? e).replace(/\s+/g, ' ').slice(0, 900)}`);
	}
}
await daytona[Symbol.asyncDispose]();
console.log(`sdk_check: ${ran - failed} of ${ran} checks passed ` +
	`(@daytonaio/sdk ${SDK_VERSION}, node ${process.version})`);
process.exit(failed || !ran ? 1 : 0);
