// smoke.mjs - the compose stack's smoke test, through the composed gateway
// as a user's client sees it (run.sh starts the stack first).
//
//   node smoke.mjs
//
// Environment:
//   MARK_URL          the gateway, e.g. http://127.0.0.1:18080
//   MARK_DOUBLE_URL   the LLM double's control endpoint, e.g. http://127.0.0.1:18090
//   MARK_COMPOSE      the compose command as JSON, e.g.
//                     ["docker-compose","-p","marktest","-f","a.yml","-f","b.yml"]
//
// Prints one "ok" / "not ok" line per check and ends with "N passed, M
// failed"; exits 1 when a check failed.
import { execFileSync, spawnSync } from 'node:child_process';

const base = process.env.MARK_URL;
const doubleUrl = process.env.MARK_DOUBLE_URL;
const compose = JSON.parse(process.env.MARK_COMPOSE || '[]');
const STREAMED_TURNS = 20;

let passed = 0;
let failed = 0;

function check(ok, what, detail) {
  if (ok) {
    passed++;
    console.log(`ok - ${what}`);
  } else {
    failed++;
    console.log(`not ok - ${what}${detail ? `: ${detail}` : ''}`);
  }
  return ok;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function http(method, path, { token, json, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (json !== undefined) {
    h['content-type'] = 'application/json';
    body = JSON.stringify(json);
  }
  const res = await fetch(base + path, { method, headers: h, body, signal: AbortSignal.timeout(120000) });
  const text = await res.text();
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    data = text;
  }
  return { status: res.status, data };
}

async function readyz() {
  try {
    return await http('GET', '/readyz');
  } catch (e) {
    return { status: 0, data: String(e) };
  }
}

// Wait until /readyz is 200 and pred(body) holds; the last answer.
async function waitReady(pred, ms) {
  const until = Date.now() + ms;
  let r;
  for (;;) {
    r = await readyz();
    if (r.status === 200 && pred(r.data)) return r;
    if (Date.now() > until) return r;
    await sleep(1000);
  }
}

async function scenario(steps) {
  const res = await fetch(`${doubleUrl}/_double/scenario`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ steps }),
  });
  if (res.status !== 200) throw new Error(`scenario: ${res.status} ${await res.text()}`);
}

const pyStep = (id, code) => ({
  openai_tool_calls: [{ id, name: 'run_python', arguments: JSON.stringify({ code }) }],
});

// A streamed turn: POST /api/v1/chat with Accept: text/event-stream; its events.
// onEvent(ev) is called as each arrives.
async function streamTurn(token, body, onEvent = () => {}) {
  const res = await fetch(`${base}/api/v1/chat`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'text/event-stream',
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(180000),
  });
  const events = [];
  if (res.status !== 200) return { status: res.status, events, text: await res.text() };
  const dec = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev = { event: 'message', data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) ev.event = line.slice(7);
        else if (line.startsWith('data: ')) ev.data += line.slice(6);
        else if (line.startsWith('id: ')) ev.id = line.slice(4);
      }
      if (block.startsWith(':') && !block.includes('\nevent:')) continue; // a comment (keep-alive)
      try {
        ev.json = JSON.parse(ev.data);
      } catch {
        ev.json = null;
      }
      events.push(ev);
      onEvent(ev);
    }
  }
  return { status: res.status, events };
}

function sh(args) {
  return execFileSync(args[0], args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function containersOf(service) {
  return sh([...compose, 'ps', '-q', service]).split('\n').filter(Boolean);
}

async function main() {
  // ---- the stack is up, with two llm replicas and two executor workers
  const ready = await waitReady(
    (b) => b.services?.llm?.replicas === 2 && b.services?.executor?.workers === 2,
    120000,
  );
  check(ready.status === 200, '/readyz answers 200 with every service ready', JSON.stringify(ready.data));
  check(ready.data?.services?.llm?.replicas === 2, 'the gateway is connected to both llm replicas',
    JSON.stringify(ready.data?.services?.llm));
  check(ready.data?.services?.executor?.workers === 2, 'the executor router has both workers',
    JSON.stringify(ready.data?.services?.executor));

  // ---- an account
  const email = `smoke-${process.pid}-${Date.now()}@example.com`;
  const password = 'a long enough passphrase 42';
  let r = await http('POST', '/auth/signup', { json: { email, password, name: 'Smoke' } });
  check(r.status === 201 && r.data.email === email, 'sign-up creates the account', JSON.stringify(r.data));
  r = await http('POST', '/auth/signin', { json: { email, password } });
  const token = r.data?.access_token;
  check(r.status === 200 && typeof token === 'string', 'sign-in returns an access token', JSON.stringify(r.data));
  if (!token) return;

  // ---- an upload
  const csv = 'region,sales\nnorth,3\nsouth,9\neast,4\n';
  const form = new FormData();
  form.append('file', new Blob([csv], { type: 'text/csv' }), 'sales.csv');
  r = await http('POST', '/api/v1/files', { token, body: form });
  const fileId = r.data?.id;
  check(r.status === 201 && r.data.kind === 'csv', 'a CSV upload is stored as csv', JSON.stringify(r.data));

  // ---- a turn that runs pandas on the upload and returns a Plotly figure
  await scenario([
    pyStep('call_1',
      "import pandas as pd, plotly.express as px\n" +
      "df = pd.read_csv('sales.csv')\n" +
      "print(int(df.sales.sum()))\n" +
      "px.bar(df, x='region', y='sales')"),
    { match: { body_contains: 'Plotly figure' }, openai_text: 'Sales total 16; the south leads.' },
  ]);
  r = await http('POST', '/api/v1/chat', {
    token,
    json: { message: 'Total sales by region, as a chart', attachments: fileId ? [fileId] : [] },
  });
  const step = r.data?.steps?.[0];
  check(r.status === 200 && !r.data.error && r.data.answer_story === 'Sales total 16; the south leads.',
    'a chat turn answers with the model\'s story', JSON.stringify(r.data?.error ?? r.data));
  check(step?.stdout === '16\n', 'its Python step read the upload with pandas', JSON.stringify(step));
  const viz = r.data?.visualizations?.[0];
  check(Array.isArray(viz?.data) && viz.data[0]?.type === 'bar', 'it returns the Plotly figure',
    JSON.stringify(r.data?.visualizations)?.slice(0, 300));

  // ---- the sandbox's process limit holds in a container (the worker is not root)
  await scenario([
    pyStep('fork_1',
      'import os, time\n' +
      'pids, err = [], None\n' +
      'for i in range(500):\n' +
      '    try:\n' +
      '        pid = os.fork()\n' +
      '    except OSError as e:\n' +
      '        err = e.errno\n' +
      '        break\n' +
      '    if pid == 0:\n' +
      '        time.sleep(30)\n' +
      '        os._exit(0)\n' +
      '    pids.append(pid)\n' +
      'for p in pids:\n' +
      '    os.kill(p, 9)\n' +
      '    os.waitpid(p, 0)\n' +
      'print(len(pids) < 500, err)'),
    { openai_text: 'Forked as far as allowed.' },
  ]);
  r = await http('POST', '/api/v1/chat', { token, json: { message: 'How many processes may I start?' } });
  check(r.data?.steps?.[0]?.stdout === 'True 11\n',
    'code that forks without end stops at the sandbox\'s process limit (EAGAIN)', JSON.stringify(r.data?.steps?.[0] ?? r.data).slice(0, 300));

  // ---- 20 streamed turns, each in a new chat (new chats spread over the workers)
  const steps = [];
  for (let i = 0; i < STREAMED_TURNS; i++) {
    steps.push(pyStep(`s${i}`, `print(${i} * 2)`));
    steps.push({ openai_text: `Turn ${i} done.` });
  }
  await scenario(steps);
  let good = 0;
  const bad = [];
  for (let i = 0; i < STREAMED_TURNS; i++) {
    const t = await streamTurn(token, { message: `Streamed question ${i}` });
    const fin = t.events.find((e) => e.event === 'final');
    const started = t.events[0]?.event === 'turn_started';
    const result = t.events.find((e) => e.event === 'tool_result');
    if (t.status === 200 && started && fin?.json?.answer_story === `Turn ${i} done.` &&
        JSON.stringify(result?.json ?? {}).includes(String(i * 2))) good++;
    else bad.push(`turn ${i}: ${t.status} ${t.text ?? ''} ${JSON.stringify(t.events.map((e) => e.event))} ${fin?.data ?? ''}`);
  }
  check(good === STREAMED_TURNS, `${STREAMED_TURNS} streamed turns each stream turn_started .. final`, bad.slice(0, 3).join(' | '));

  // ---- both llm replicas and both workers served some of them
  r = await readyz();
  const byReplica = r.data?.services?.llm?.turns_last_hour?.by_replica ?? [];
  const byWorker = r.data?.services?.executor?.jobs_by_worker ?? [];
  check(byReplica.length === 2 && byReplica.every((n) => n > 0),
    'both llm replicas ran some of the turns (/readyz turns_last_hour)', JSON.stringify(byReplica));
  check(byWorker.length === 2 && byWorker.every((n) => n > 0),
    'both executor workers ran some of the jobs (/readyz jobs_by_worker)', JSON.stringify(byWorker));

  // ---- an llm replica killed mid-turn
  await scenario([{ openai_text: 'You should never see this.', first_byte_delay_ms: 600000 }]);
  const question = `A question asked while its replica dies ${Date.now()}`;
  let turnId = null;
  let chatId = null;
  const killed = [];
  const turn = streamTurn(token, { message: question }, (ev) => {
    if (ev.event !== 'turn_started' || turnId) return;
    turnId = ev.json?.turn_id;
    chatId = ev.json?.chat_id;
  });
  const until = Date.now() + 60000;
  while (!turnId && Date.now() < until) await sleep(200);
  if (check(!!turnId, 'a slow turn has started', turnId)) {
    // The replica running it: chat.turns.replica, the id each llm replica
    // logs at start (LLM-REPLICA).
    const replica = sh([...compose, 'exec', '-T', 'postgres', 'psql', '-U', 'postgres', '-d', 'mark',
      '-Atc', `SELECT replica FROM chat.turns WHERE id = '${turnId}'`]).trim();
    for (const c of containersOf('llm')) {
      const out = spawnSync('docker', ['logs', c], { encoding: 'utf8', maxBuffer: 64 << 20 });
      const logs = `${out.stdout}${out.stderr}`;
      if (replica && logs.includes(`replica ${replica}`)) {
        const pid = sh(['docker', 'inspect', '-f', '{{.State.Pid}}', c]).trim();
        process.kill(Number(pid), 'SIGKILL');
        killed.push(c);
      }
    }
    check(killed.length === 1, 'the llm replica running it is killed (SIGKILL)', `replica ${replica}`);
  }
  const t = await turn;
  const fin = t.events.find((e) => e.event === 'final');
  check(fin?.json?.error?.code === 'turn_lost' && /replica|stopped|lost/i.test(fin?.json?.answer_story ?? ''),
    'the client gets a final event with a clear turn_lost story', fin?.data ?? JSON.stringify(t));
  if (chatId) {
    r = await http('GET', `/api/v1/chats/${chatId}/messages`, { token });
    const items = r.data?.items ?? [];
    check(items.some((m) => m.role === 'user' && JSON.stringify(m.content).includes(question)),
      'the question stays saved in its chat', JSON.stringify(items).slice(0, 400));
    check(items.some((m) => m.role === 'assistant' && m.error?.code === 'turn_lost'),
      'the chat records the lost turn', JSON.stringify(items).slice(0, 400));
  }

  // ---- the stack recovers: the killed replica restarts, turns run again
  const back = await waitReady((b) => b.services?.llm?.replicas === 2, 120000);
  check(back.status === 200 && back.data?.services?.llm?.replicas === 2,
    'the killed replica restarts and /readyz is 200 with both replicas', JSON.stringify(back.data?.services?.llm));
  await scenario([pyStep('after', 'print(6 * 7)'), { openai_text: 'Back to work: 42.' }]);
  r = await http('POST', '/api/v1/chat', { token, json: { message: 'Still there?' } });
  check(r.status === 200 && r.data?.answer_story === 'Back to work: 42.' && r.data?.steps?.[0]?.stdout === '42\n',
    'a turn after the recovery runs code and answers', JSON.stringify(r.data).slice(0, 300));
}

try {
  await main();
} catch (e) {
  check(false, 'the smoke test ran to its end', e.stack);
}
console.log(`smoke: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
