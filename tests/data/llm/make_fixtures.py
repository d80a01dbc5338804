#!/usr/bin/env python3
"""make_fixtures.py - write the LLM double's scenario fixtures (tests/data/llm/*.json).

The fixtures are committed; this script is how they were made, and it keeps the
hand-computed parts honest: the `split` arrays that cut a stream inside a UTF-8
character or between '\\r' and '\\n' are derived from the exact bytes here.
Run it from anywhere after changing a fixture: python3 tests/data/llm/make_fixtures.py
The scenario format is described in tests/doubles/llm/llm_double_scenario.c.
"""
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
CREATED = 1730000000
MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
TOOL_ARGS = '{"code":"print(1)"}'


def write(name, scenario):
    scenario = {"name": name, **scenario}
    with open(os.path.join(HERE, name + ".json"), "w", encoding="utf-8") as f:
        text = json.dumps(scenario, ensure_ascii=False, indent=2)
        # Keep split arrays on one line.
        text = re.sub(r'"split": \[([\d,\s]+)\]',
                      lambda m: '"split": [' + ", ".join(m.group(1).split()).replace(",,", ",")
                      + "]", text)
        f.write(text + "\n")


def compact(v):
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- OpenAI raw chunks

def chunk(delta=None, finish=None, cid="chatcmpl-fx1", choices=True, usage="absent"):
    c = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
         "system_fingerprint": "fp_fx"}
    if choices is True:
        c["choices"] = [{"index": 0, "delta": delta if delta is not None else {},
                         "logprobs": None, "finish_reason": finish}]
    else:
        c["choices"] = choices  # [] or None for a usage chunk
    if usage != "absent":
        c["usage"] = usage
    return c


def data(obj, eol="\n"):
    return "data: " + compact(obj) + eol + eol


USAGE = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}


def text_events(pieces, eol="\n"):
    ev = [data(chunk({"role": "assistant", "content": ""}), eol)]
    ev += [data(chunk({"content": p}), eol) for p in pieces]
    ev.append(data(chunk({}, "stop"), eol))
    return ev


DONE = "data: [DONE]\n\n"


def cuts_to_split(body, cuts):
    """Slice sizes that cut body (bytes) exactly at the given offsets and cover it all."""
    sizes, last = [], 0
    for c in sorted(set(cuts)):
        if 0 < c < len(body):
            sizes.append(c - last)
            last = c
    sizes.append(len(body) - last)
    return sizes


def tool_delta(index=None, cid=None, name=None, args=""):
    t = {}
    if index is not None:
        t["index"] = index
    if cid is not None:
        t["id"] = cid
        t["type"] = "function"
    fn = {}
    if name is not None:
        fn["name"] = name
    fn["arguments"] = args
    t["function"] = fn
    return t


def tool_events(deltas, finish="tool_calls"):
    ev = [data(chunk({"role": "assistant", "content": None}))]
    ev += [data(chunk({"tool_calls": [d]})) for d in deltas]
    ev.append(data(chunk({}, finish)))
    ev.append(DONE)
    return ev


def openai_error(message, type_, code=None, param=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def main():
    # -------------------------------------------------- generated OpenAI bodies
    write("openai_text", {"steps": [{"openai_text": "Hello there"}]})
    write("openai_tool_call", {"steps": [
        {"match": {"has_tools": True},
         "openai_tool_calls": [{"id": "call_1", "name": "run_python", "arguments": TOOL_ARGS}]},
        {"match": {"body_contains": "call_1"}, "openai_text": "It printed 1."},
    ]})
    write("openai_parallel_tool_calls", {"steps": [
        {"match": {"has_tools": True},
         "openai_tool_calls": [
             {"id": "call_1", "name": "run_python", "arguments": TOOL_ARGS},
             {"id": "call_2", "name": "run_sql", "arguments": '{"sql":"select 1"}'}]},
        {"match": {"body_contains": "call_2"}, "openai_text": "Both ran."},
    ]})
    write("openai_tool_call_empty_args", {"steps": [
        {"openai_tool_calls": [{"id": "call_1", "name": "list_tables", "arguments": ""}]}]})
    write("openai_length", {"steps": [
        {"openai_tool_calls": [{"id": "call_1", "name": "run_python",
                                "arguments": '{"code":"print(\\"a very long'}],
         "finish_reason": "length"}]})
    long_text = "Hello there, this is a streamed answer."
    # A pause between writes keeps slices apart even for clients that read the socket
    # directly (over chunked encoding libcurl hands over one chunk per callback anyway);
    # not for split 1, where it would cost a millisecond per byte.
    for name, split, pause in (("openai_stream_split_1", 1, 0), ("openai_stream_split_7", 7, 1),
                               ("openai_stream_split_fib", [1, 2, 3, 5, 8, 13], 1)):
        step = {"match": {"stream": True}, "openai_text": long_text, "split": split}
        if pause:
            step["between_writes_ms"] = pause
        write(name, {"steps": [step]})

    # -------------------------------------------------- raw OpenAI streams
    # Cut inside every multi-byte character of the text (after each of its lead and
    # middle bytes), so no UTF-8 sequence arrives whole in one write.
    utf8_text = "naïve café 数据 🙂"
    ev = text_events(["naï", "ve ca", "fé 数", "据 🙂"]) + [DONE]
    body = "".join(ev).encode("utf-8")
    cuts = [i for i in range(1, len(body)) if 0x80 <= body[i] <= 0xBF]
    write("openai_stream_utf8_split", {
        "comment": "text: " + utf8_text + "; every write ends inside a UTF-8 character",
        "steps": [{"match": {"stream": True}, "sse": ev, "split": cuts_to_split(body, cuts),
                   "between_writes_ms": 2}]})

    ev = text_events(["Hel", "lo ", "there"], eol="\r\n") + ["data: [DONE]\r\n\r\n"]
    body = "".join(ev).encode("utf-8")
    cuts = [i + 1 for i in range(len(body)) if body[i] == 0x0D]
    write("openai_stream_crlf", {
        "comment": "CRLF line endings; every '\\r' ends a write and its '\\n' starts the next",
        "steps": [{"match": {"stream": True}, "sse": ev, "split": cuts_to_split(body, cuts),
                   "between_writes_ms": 2}]})

    ev = [": keep-alive\n\n"] + text_events(["Hel", "lo ", "there"])
    ev = ev[:2] + [": OPENROUTER PROCESSING\n\n"] + ev[2:4] + [": keep-alive\n\n"] + ev[4:]
    write("openai_stream_keepalive", {
        "comment": "': ...' comment lines before and between events (text: Hello there)",
        "steps": [{"match": {"stream": True}, "sse": ev + [DONE]}]})

    ev = [data(chunk({"role": "assistant", "content": ""}, usage=None)),
          data(chunk({"content": "Hello"}, usage=None)),
          data(chunk({"content": " there"}, usage=None)),
          data(chunk({}, "stop", usage=None)),
          data(chunk(choices=None, usage=USAGE)), DONE]
    write("openai_stream_usage_choices_null", {
        "comment": "vLLM-style final usage chunk with \"choices\": null (text: Hello there)",
        "steps": [{"match": {"stream": True}, "sse": ev}]})

    write("openai_stream_tool_no_index", {
        "comment": "Gemini compat / old Ollama: tool deltas without index",
        "steps": [{"match": {"stream": True}, "sse": tool_events([
            tool_delta(None, "call_1", "run_python", ""),
            tool_delta(None, None, None, '{"code":'),
            tool_delta(None, None, None, '"print(1)"}')])}]})
    write("openai_stream_tool_index_zero", {
        "comment": "Ollama #15457: index always 0, a new id starts a new call",
        "steps": [{"match": {"stream": True}, "sse": tool_events([
            tool_delta(0, "call_1", "run_python", ""),
            tool_delta(0, None, None, TOOL_ARGS),
            tool_delta(0, "call_2", "run_sql", ""),
            tool_delta(0, None, None, '{"sql":"select 1"}')])}]})
    write("openai_stream_tool_no_id", {
        "comment": "first tool delta has an index but no id (the client synthesises one)",
        "steps": [{"match": {"stream": True}, "sse": tool_events([
            {"index": 0, "type": "function", "function": {"name": "run_python", "arguments": ""}},
            tool_delta(0, None, None, '{"code":"pr'),
            tool_delta(0, None, None, 'int(1)"}')])}]})
    write("openai_stream_tool_whole", {
        "comment": "the whole tool call in one chunk, as local servers send it",
        "steps": [{"match": {"stream": True}, "sse": tool_events([
            tool_delta(0, "call_1", "run_python", TOOL_ARGS)])}]})

    ev = text_events(["Hel", "lo"])[:-1] + [data(openai_error(
        "The server had an error while processing your request. Sorry about that!",
        "server_error"))]
    write("openai_stream_midstream_error", {
        "comment": "status 200, two content deltas, then an error event and the end",
        "steps": [{"match": {"stream": True}, "sse": ev}]})
    write("openai_stream_no_done", {
        "comment": "finish_reason stop, no [DONE], then the server closes the connection",
        "steps": [{"match": {"stream": True}, "sse": text_events(["Hello", " there"]),
                   "headers": {"connection": "close"}}]})
    ev = text_events(["Hello", " there"]) + [DONE]
    write("openai_stream_cut", {
        "comment": "the connection drops in the middle of the second content chunk",
        "steps": [{"match": {"stream": True}, "sse": ev,
                   "close_after_bytes": len("".join(ev[:2]).encode()) + 40}]})

    # -------------------------------------------------- OpenAI errors
    write("openai_429_rate_limit_then_ok", {"steps": [
        {"status": 429,
         "headers": {"retry-after-ms": "200", "retry-after": "1",
                     "x-ratelimit-limit-requests": "500",
                     "x-ratelimit-remaining-requests": "0",
                     "x-ratelimit-reset-requests": "200ms"},
         "json": openai_error("Rate limit reached for gpt-4o-mini in organization org-fx on "
                              "requests per min (RPM): Limit 500, Used 500, Requested 1. "
                              "Please try again in 200ms.",
                              "requests", "rate_limit_exceeded")},
        {"openai_text": "Hello after the rate limit"},
    ]})
    write("openai_429_insufficient_quota", {"steps": [
        {"status": 429,
         "json": openai_error("You exceeded your current quota, please check your plan and "
                              "billing details.", "insufficient_quota", "insufficient_quota")},
    ]})
    write("openai_500_then_ok", {"steps": [
        {"status": 500, "json": openai_error(
            "The server had an error while processing your request. Sorry about that!",
            "server_error")},
        {"openai_text": "Hello after the server error"},
    ]})
    write("openai_503_html", {"steps": [
        {"status": 503, "content_type": "text/html",
         "text": "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
                 "<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
                 "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"},
        {"openai_text": "Hello after the gateway error"},
    ]})
    write("openai_gemini_array_error", {"steps": [
        {"status": 400, "json": [{"error": {
            "code": 400,
            "message": "Invalid JSON payload received. Unknown name \"store\": "
                       "Cannot find field.",
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                         "fieldViolations": [{"description": "Invalid JSON payload received. "
                                              "Unknown name \"store\": Cannot find field."}]}]}}]},
    ]})
    write("openai_slow_first_byte", {"steps": [
        {"first_byte_delay_ms": 3000, "openai_text": "Hello, slowly"}]})
    write("openai_malformed_json_200", {"steps": [
        {"status": 200, "content_type": "application/json",
         "text": '{"id":"chatcmpl-broken","object":"chat.completion","choices":[{"index":0,'
                 '"message":{"role":"assistant","content":"Hel'}]})

    # -------------------------------------------------- Anthropic
    use = [{"id": "toolu_1", "name": "run_python", "input": {"code": "print(1)"}}]
    write("anthropic_text", {"steps": [{"anthropic_text": "Hello there"}]})
    write("anthropic_tool_use", {"steps": [
        {"match": {"has_tools": True, "stream": False}, "anthropic_text": "Let me check.",
         "anthropic_tool_uses": use},
        {"match": {"body_contains": "toolu_1"}, "anthropic_text": "It printed 1."},
    ]})
    write("anthropic_stream_tool_use", {"steps": [
        {"match": {"has_tools": True, "stream": True}, "anthropic_text": "Let me check.",
         "anthropic_tool_uses": use, "split": 9, "between_writes_ms": 1},
    ]})

    def ev_(name, obj):
        return "event: " + name + "\ndata: " + compact(obj) + "\n\n"

    start = {"type": "message_start", "message": {
        "id": "msg_fx1", "type": "message", "role": "assistant", "model": CLAUDE, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 1}}}
    write("anthropic_stream_error_after_partial", {
        "comment": "status 200, partial text, then an overloaded_error event; no message_stop",
        "steps": [{"match": {"stream": True}, "sse": [
            ev_("message_start", start),
            ev_("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}}),
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
            ev_("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": "Hel"}}),
            ev_("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": "lo"}}),
            ev_("error", {"type": "error",
                          "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ]}]})
    write("anthropic_529_then_ok", {"steps": [
        {"status": 529, "json": {"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_fx529"}},
        {"anthropic_text": "Hello after the overload"},
    ]})
    write("anthropic_429_retry_after_then_ok", {"steps": [
        {"status": 429, "headers": {"retry-after": "1",
                                    "anthropic-ratelimit-requests-remaining": "0"},
         "json": {"type": "error", "error": {
             "type": "rate_limit_error",
             "message": "This request would exceed the rate limit for your organization of 50 "
                        "requests per minute."}, "request_id": "req_fx429"}},
        {"anthropic_text": "Hello after the rate limit"},
    ]})


if __name__ == "__main__":
    main()
