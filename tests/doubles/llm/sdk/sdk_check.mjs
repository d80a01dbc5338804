// sdk_check.mjs - is the LLM double faithful? Drive it with the official,
// unmodified OpenAI and Anthropic SDKs (versions pinned in package.json) and
// check that they parse what it sends the way they parse the real services.
//
//   BASE=http://127.0.0.1:PORT node tests/doubles/llm/sdk/sdk_check.mjs
//
// The SDKs get only baseURL and apiKey. Before each check the matching
// scenario from tests/data/llm/ is loaded with POST /_double/scenario, and
// the requests the double recorded are inspected afterwards. Prints one line
// per check ("ok - ..." / "not ok - ...") and a summary; exits 0 when all pass.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

const BASE = (process.env.BASE || '').replace(/\/+$/, '');
if (!BASE) {
	console.error('sdk_check: set BASE to the double, e.g. BASE=http://127.0.0.1:8080');
	process.exit(2);
}
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'data', 'llm');
const OPENAI_KEY = 'sk-double-openai';
const ANTHROPIC_KEY = 'sk-ant-double';

const openai = new OpenAI({ apiKey: OPENAI_KEY, baseURL: BASE + '/v1' });
const anthropic = new Anthropic({ apiKey: ANTHROPIC_KEY, baseURL: BASE });

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

// Forget earlier requests and load tests/data/llm/<name>.json.
async function scenario(name) {
	await control('POST', '/_double/reset');
	const s = JSON.parse(readFileSync(join(FIXTURES, name + '.json'), 'utf8'));
	await control('POST', '/_double/scenario', s);
}

const requests = () => control('GET', '/_double/requests');

// ---------------------------------------------------------------- shared bits

const PY_TOOL_OPENAI = {
	type: 'function',
	function: {
		name: 'run_python',
		description: 'Run Python code in the sandbox and return its output.',
		parameters: {
			type: 'object',
			properties: { code: { type: 'string', description: 'the code' } },
			required: ['code'],
			additionalProperties: false,
		},
	},
};
const SQL_TOOL_OPENAI = {
	type: 'function',
	function: {
		name: 'run_sql',
		description: 'Run a read-only SQL query.',
		parameters: {
			type: 'object',
			properties: { sql: { type: 'string' } },
			required: ['sql'],
			additionalProperties: false,
		},
	},
};
const PY_TOOL_ANTHROPIC = {
	name: 'run_python',
	description: 'Run Python code in the sandbox and return its output.',
	input_schema: {
		type: 'object',
		properties: { code: { type: 'string', description: 'the code' } },
		required: ['code'],
	},
};
const USER = [{ role: 'user', content: 'What does print(1) print?' }];

async function oneOpenAIRequest(expect) {
	const reqs = await requests();
	assert.equal(reqs.length, expect ?? 1, 'requests recorded: ' + JSON.stringify(reqs));
	const r = reqs[0];
	assert.equal(r.method, 'POST');
	assert.equal(r.path, '/v1/chat/completions');
	assert.equal(r.headers.authorization, 'Bearer ' + OPENAI_KEY);
	assert.equal(r.body.model, 'gpt-4o-mini');
	return reqs;
}

async function oneAnthropicRequest(expect) {
	const reqs = await requests();
	assert.equal(reqs.length, expect ?? 1, 'requests recorded: ' + JSON.stringify(reqs));
	const r = reqs[0];
	assert.equal(r.method, 'POST');
	assert.equal(r.path, '/v1/messages');
	// x-api-key (API version 2023-06-01), or Bearer as SDK 1.x sends it (2026-10-21).
	assert.ok(r.headers['x-api-key'] === ANTHROPIC_KEY ||
		r.headers.authorization === 'Bearer ' + ANTHROPIC_KEY, 'the key was sent');
	assert.ok(r.headers['anthropic-version'], 'anthropic-version header sent');
	assert.equal(typeof r.body.max_tokens, 'number');
	return reqs;
}

// Stream a chat completion with include_usage; returns {text, usage, finish, chunks}.
async function openaiStreamText() {
	const stream = await openai.chat.completions.create({
		model: 'gpt-4o-mini',
		messages: USER,
		stream: true,
		stream_options: { include_usage: true },
	});
	let text = '', usage = null, finish = null, chunks = 0;
	for await (const chunk of stream) {
		chunks++;
		for (const c of chunk.choices ?? []) {
			text += c.delta?.content ?? '';
			finish = c.finish_reason ?? finish;
		}
		if (chunk.usage) usage = chunk.usage;
	}
	return { text, usage, finish, chunks };
}

// ---------------------------------------------------------------- checks

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

// 1. OpenAI: plain chat completion.
check('openai: a plain chat completion parses (content, finish_reason, usage)', async () => {
	await scenario('openai_text');
	const r = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: USER });
	assert.equal(r.object, 'chat.completion');
	assert.equal(r.model, 'gpt-4o-mini');
	assert.equal(r.choices[0].message.role, 'assistant');
	assert.equal(r.choices[0].message.content, 'Hello there');
	assert.equal(r.choices[0].finish_reason, 'stop');
	assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens],
		[11, 5, 16]);
	await oneOpenAIRequest();
});

// 2. OpenAI: a tool call, then the tool result sent back (the double validates the pairing).
check('openai: a tool call parses and the tool result round-trips', async () => {
	await scenario('openai_tool_call');
	const r = await openai.chat.completions.create({
		model: 'gpt-4o-mini', messages: USER, tools: [PY_TOOL_OPENAI],
	});
	const msg = r.choices[0].message;
	assert.equal(r.choices[0].finish_reason, 'tool_calls');
	assert.equal(msg.content, null);
	assert.equal(msg.tool_calls.length, 1);
	assert.equal(msg.tool_calls[0].id, 'call_1');
	assert.equal(msg.tool_calls[0].type, 'function');
	assert.equal(msg.tool_calls[0].function.name, 'run_python');
	assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), { code: 'print(1)' });
	const r2 = await openai.chat.completions.create({
		model: 'gpt-4o-mini', tools: [PY_TOOL_OPENAI],
		messages: [...USER, msg, { role: 'tool', tool_call_id: 'call_1', content: '1\n' }],
	});
	assert.equal(r2.choices[0].message.content, 'It printed 1.');
	const reqs = await oneOpenAIRequest(2);
	assert.equal(reqs[0].body.tools[0].function.name, 'run_python');
	assert.equal(reqs[1].body.messages[2].tool_call_id, 'call_1');
});

// 3. OpenAI: streamed text with the usage chunk.
check('openai: a streamed completion concatenates and brings usage', async () => {
	await scenario('openai_text');
	const s = await openaiStreamText();
	assert.equal(s.text, 'Hello there');
	assert.equal(s.finish, 'stop');
	assert.ok(s.usage, 'usage chunk arrived');
	assert.equal(s.usage.total_tokens, 16);
	assert.ok(s.chunks >= 4, `content came in pieces (${s.chunks} chunks)`);
	const reqs = await oneOpenAIRequest();
	assert.equal(reqs[0].body.stream, true);
	assert.deepEqual(reqs[0].body.stream_options, { include_usage: true });
});

// Extra: the same stream through every adversarial slicing fixture.
for (const [name, want] of [
	['openai_stream_split_1', 'Hello there, this is a streamed answer.'],
	['openai_stream_split_7', 'Hello there, this is a streamed answer.'],
	['openai_stream_split_fib', 'Hello there, this is a streamed answer.'],
	['openai_stream_utf8_split', 'naïve café 数据 🙂'],
	['openai_stream_crlf', 'Hello there'],
	['openai_stream_keepalive', 'Hello there'],
]) {
	check(`openai: streamed text survives ${name}`, async () => {
		await scenario(name);
		const s = await openaiStreamText();
		assert.equal(s.text, want);
		assert.equal(s.finish, 'stop');
	});
}

check('openai: two parallel tool calls stream into the SDK accumulator', async () => {
	await scenario('openai_parallel_tool_calls');
	const stream = openai.chat.completions.stream({
		model: 'gpt-4o-mini', messages: USER, tools: [PY_TOOL_OPENAI, SQL_TOOL_OPENAI],
	});
	const done = await stream.finalChatCompletion();
	const calls = done.choices[0].message.tool_calls;
	assert.equal(done.choices[0].finish_reason, 'tool_calls');
	assert.deepEqual(calls.map((c) => [c.id, c.function.name, JSON.parse(c.function.arguments)]),
		[['call_1', 'run_python', { code: 'print(1)' }], ['call_2', 'run_sql', { sql: 'select 1' }]]);
});

check('openai: a 429 with retry-after-ms is retried by the SDK, then succeeds', async () => {
	await scenario('openai_429_rate_limit_then_ok');
	const t0 = Date.now();
	const r = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: USER });
	assert.equal(r.choices[0].message.content, 'Hello after the rate limit');
	assert.ok(Date.now() - t0 >= 180, 'waited for retry-after-ms');
	await oneOpenAIRequest(2);
});

check('openai: a mid-stream error event makes the SDK throw', async () => {
	await scenario('openai_stream_midstream_error');
	let text = '';
	await assert.rejects(async () => {
		const stream = await openai.chat.completions.create({
			model: 'gpt-4o-mini', messages: USER, stream: true,
		});
		for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
	}, (e) => e instanceof OpenAI.APIError && /server had an error/.test(e.message));
	assert.equal(text, 'Hello');
});

// 4. Anthropic: plain message.
check('anthropic: a plain message parses (content, stop_reason, usage)', async () => {
	await scenario('anthropic_text');
	const m = await anthropic.messages.create({
		model: 'claude-haiku-4-5', max_tokens: 256, messages: USER,
	});
	assert.equal(m.type, 'message');
	assert.equal(m.role, 'assistant');
	assert.equal(m.model, 'claude-haiku-4-5');
	assert.equal(m.content.length, 1);
	assert.equal(m.content[0].type, 'text');
	assert.equal(m.content[0].text, 'Hello there');
	assert.equal(m.stop_reason, 'end_turn');
	assert.deepEqual([m.usage.input_tokens, m.usage.output_tokens], [11, 5]);
	const reqs = await oneAnthropicRequest();
	assert.equal(reqs[0].body.model, 'claude-haiku-4-5');
});

// 5. Anthropic: tool use, then the tool_result sent back.
check('anthropic: a tool_use parses and the tool_result round-trips', async () => {
	await scenario('anthropic_tool_use');
	const m = await anthropic.messages.create({
		model: 'claude-haiku-4-5', max_tokens: 256, messages: USER, tools: [PY_TOOL_ANTHROPIC],
	});
	assert.equal(m.stop_reason, 'tool_use');
	assert.equal(m.content[0].type, 'text');
	assert.equal(m.content[0].text, 'Let me check.');
	assert.equal(m.content[1].type, 'tool_use');
	assert.equal(m.content[1].id, 'toolu_1');
	assert.equal(m.content[1].name, 'run_python');
	assert.deepEqual(m.content[1].input, { code: 'print(1)' });
	const m2 = await anthropic.messages.create({
		model: 'claude-haiku-4-5', max_tokens: 256, tools: [PY_TOOL_ANTHROPIC],
		messages: [...USER, { role: 'assistant', content: m.content }, {
			role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: '1\n' }],
		}],
	});
	assert.equal(m2.content[0].text, 'It printed 1.');
	const reqs = await oneAnthropicRequest(2);
	assert.equal(reqs[0].body.tools[0].input_schema.type, 'object');
});

// 6a. Anthropic: stream: true, raw events.
check('anthropic: stream: true yields the event sequence and the text', async () => {
	await scenario('anthropic_text');
	const stream = await anthropic.messages.create({
		model: 'claude-haiku-4-5', max_tokens: 256, messages: USER, stream: true,
	});
	let text = '';
	const types = [];
	for await (const ev of stream) {
		types.push(ev.type);
		if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
	}
	assert.equal(text, 'Hello there');
	assert.equal(types[0], 'message_start');
	assert.equal(types.at(-1), 'message_stop');
	assert.ok(types.includes('message_delta'));
	const reqs = await oneAnthropicRequest();
	assert.equal(reqs[0].body.stream, true);
});

// 6b. Anthropic: messages.stream() with a streamed tool_use, via finalMessage().
check('anthropic: messages.stream() accumulates text and a streamed tool_use input', async () => {
	await scenario('anthropic_stream_tool_use');
	const stream = anthropic.messages.stream({
		model: 'claude-haiku-4-5', max_tokens: 256, messages: USER, tools: [PY_TOOL_ANTHROPIC],
	});
	let text = '';
	stream.on('text', (t) => { text += t; });
	const m = await stream.finalMessage();
	assert.equal(text, 'Let me check.');
	assert.equal(m.stop_reason, 'tool_use');
	assert.equal(m.content[1].type, 'tool_use');
	assert.equal(m.content[1].id, 'toolu_1');
	assert.deepEqual(m.content[1].input, { code: 'print(1)' });
	// message_delta usage is cumulative: 5 in all, not message_start's 1 + 5.
	assert.equal(m.usage.output_tokens, 5);
	assert.equal(m.usage.input_tokens, 11);
});

check('anthropic: a 529 overloaded is retried by the SDK, then succeeds', async () => {
	await scenario('anthropic_529_then_ok');
	const m = await anthropic.messages.create({
		model: 'claude-haiku-4-5', max_tokens: 256, messages: USER,
	});
	assert.equal(m.content[0].text, 'Hello after the overload');
	await oneAnthropicRequest(2);
});

check('anthropic: a 429 with retry-after: 1 is retried after a second, then succeeds', async () => {
	await scenario('anthropic_429_retry_after_then_ok');
	const t0 = Date.now();
	const m = await anthropic.messages.create({
		model: 'claude-haiku-4-5', max_tokens: 256, messages: USER,
	});
	assert.equal(m.content[0].text, 'Hello after the rate limit');
	assert.ok(Date.now() - t0 >= 900, 'waited for retry-after');
	await oneAnthropicRequest(2);
});

check('anthropic: an error event after partial output makes the SDK throw', async () => {
	await scenario('anthropic_stream_error_after_partial');
	let text = '';
	await assert.rejects(async () => {
		const stream = await anthropic.messages.create({
			model: 'claude-haiku-4-5', max_tokens: 256, messages: USER, stream: true,
		});
		for await (const ev of stream)
			if (ev.type === 'content_block_delta') text += ev.delta.text;
	}, (e) => e instanceof Anthropic.APIError && /Overloaded/.test(e.message));
	assert.equal(text, 'Hello');
});

// ---------------------------------------------------------------- run

const version = (pkg) => JSON.parse(readFileSync(
	join(dirname(fileURLToPath(import.meta.url)), 'node_modules', pkg, 'package.json'), 'utf8')).version;
let failed = 0;
for (const { name, fn } of checks) {
	const t0 = Date.now();
	try {
		await fn();
		console.log(`ok - ${name} (${Date.now() - t0} ms)`);
	} catch (e) {
		failed++;
		console.log(`not ok - ${name}\n  ${String(e?.stack ?? e).split('\n').slice(0, 6).join('\n  ')}`);
	}
}
console.log(`sdk_check: ${checks.length - failed} of ${checks.length} checks passed ` +
	`(openai ${version('openai')}, @anthropic-ai/sdk ${version('@anthropic-ai/sdk')}, node ${process.version})`);
process.exit(failed ? 1 : 0);
