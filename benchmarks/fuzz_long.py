"""Long fuzz run (`make fuzz-long`): millions of hostile client frames over real sockets into every
client endpoint, hostile requests into the HTTP APIs, and hostile provider frames into every
sans-I/O adapter. Not part of `make test` (the hypothesis suites there are the short version).

    nice -n 19 .venv/bin/python -m benchmarks.fuzz_long --frames 1000000 --provider-frames 1000000

Client side: the gateway (benchmarks/gateway_probe.py, providers on the fakes) and `--connections`
concurrent fuzzing clients spread over /v1/voice, /v1/twilio, /v1/telnyx and /v1/vonage. Each
connection opens with a valid start most of the time, then sends a seeded mix of valid messages,
mutated messages (keys dropped, values replaced by hostile JSON: wrong types, huge numbers, deep
nesting, long strings, bad base64), random text and random binary frames of any length, and
hangs up at a random point (session.end/stop, close, or a TCP abort).

An *escape* is: an exception no handler caught (aiohttp's "Error handling request" or "Unhandled
exception") or `link.crashed` line in the gateway log, an
ERROR line not caused by the provider fakes, a gateway process that died, a native `error` event
without a stable code, or a gateway that no longer completes a clean call at the end.

Provider side (in process): `parse()` of every live adapter (Gemini, OpenAI Realtime, Deepgram STT,
GPT-Live, the Deepgram agent) over mutated provider messages and random bytes, plus `classify_close()`/`classify_handshake()` on random codes and bodies; an escape is any
exception.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import aiohttp  # noqa: E402
import orjson  # noqa: E402

from benchmarks.calls import run_call  # noqa: E402
from benchmarks.procs import REPO, UNHANDLED, cpu_seconds, free_port, start_fakes, start_gateway_probe  # noqa: E402

ENDPOINTS = ("voice", "twilio", "telnyx", "vonage")
STABLE_CODES = frozenset({"bad_message", "bad_audio", "unknown_type", "session_not_started", "rate_limited",
                          "forbidden", "provider_unavailable", "not_supported", "tool_result_not_delivered",
                          "unauthorized", "unknown_option", "message_too_big", "provider_error",
                          "provider_rejected", "provider_protocol_error", "tool_call_abandoned"})


# -- hostile values ----------------------------------------------------------------------------------
def hostile(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth < 3 and r < 0.1:
        return [hostile(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if depth < 3 and r < 0.2:
        return {rng.choice(["type", "audio", "provider", "x", "", "event", "media"]): hostile(rng, depth + 1)
                for _ in range(rng.randint(0, 4))}
    return rng.choice([
        None, True, False, 0, -1, 2**63 - 1, -(2**63), 1e308, -1e-308, 3.5, "", "a" * rng.randint(1, 3000),
        "\u0000\ud7ff\uffff", "gemini", "openai", "deepgram", "auto", "pcm16", "mulaw", 8000, 16000, 44100,
        "=====", "AAAA", base64.b64encode(rng.randbytes(rng.randint(0, 700))).decode(), "🎙" * 50,
        "../../etc/passwd", "<script>", "%00", "9" * 400,
    ])


def mutate(rng: random.Random, msg: dict[str, Any]) -> dict[str, Any]:
    msg = orjson.loads(orjson.dumps(msg))
    for _ in range(rng.randint(1, 3)):
        slots: list[tuple[dict, str]] = []
        stack = [msg]
        while stack:
            d = stack.pop()
            for k, v in d.items():
                slots.append((d, k))
                if isinstance(v, dict):
                    stack.append(v)
        if not slots:
            break
        parent, key = rng.choice(slots)
        op = rng.random()
        if op < 0.3:
            del parent[key]
        elif op < 0.9:
            parent[key] = hostile(rng)
        else:
            name = hostile(rng)
            parent[name if isinstance(name, str) else "extra"] = hostile(rng)
    return msg


# -- per-endpoint templates ---------------------------------------------------------------------------
def native_templates(rng: random.Random) -> tuple[list[dict], list[dict]]:
    start = {"type": "session.start",
             "provider": rng.choice(["gemini", "openai", "openai_live", "deepgram", "deepgram_agent", "auto"]),
             "fallback": ["gemini", "openai", "openai_live", "deepgram"],
             "audio": {"input": {"encoding": "pcm16", "sample_rate": 16000},
                       "output": {"encoding": "pcm16", "sample_rate": 24000}},
             "provider_options": {"gemini": {"proactive_audio": True}, "deepgram": {"smart_format": True}},
             "tools": [{"name": "lookup", "parameters": {"type": "object", "properties": {}}}]}
    during = [
        {"type": "audio.append", "audio": base64.b64encode(bytes(640)).decode()},
        {"type": "audio.commit"}, {"type": "text", "text": "hello"},
        {"type": "tool.result", "call_id": "call_1", "output": {"ok": True}},
        {"type": "response.cancel"}, {"type": "provider.switch", "provider": "openai"},
    ]
    return [start], during


def twilio_templates(rng: random.Random) -> tuple[list[dict], list[dict]]:
    sid = "MZ" + "0" * 32
    opening = [{"event": "connected", "protocol": "Call", "version": "1.0.0"},
               {"event": "start", "sequenceNumber": "1", "streamSid": sid,
                "start": {"streamSid": sid, "accountSid": "AC" + "0" * 32, "callSid": "CA" + "0" * 32,
                          "tracks": ["inbound"], "customParameters": {"provider": "gemini"},
                          "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}]
    during = [{"event": "media", "sequenceNumber": "2", "streamSid": sid,
               "media": {"track": "inbound", "chunk": "1", "timestamp": "20",
                         "payload": base64.b64encode(b"\xff" * 160).decode()}},
              {"event": "mark", "sequenceNumber": "3", "streamSid": sid, "mark": {"name": "m1"}},
              {"event": "dtmf", "sequenceNumber": "4", "streamSid": sid, "dtmf": {"track": "inbound_track",
                                                                                  "digit": "5"}},
              {"event": "stop", "sequenceNumber": "5", "streamSid": sid, "stop": {"callSid": "CA" + "0" * 32}}]
    return opening, during


def telnyx_templates(rng: random.Random) -> tuple[list[dict], list[dict]]:
    sid = "32de0dea-53cb-4b21-89a4-9e0819c043bc"
    opening = [{"event": "connected", "version": "1.0.0"},
               {"event": "start", "sequence_number": "1", "stream_id": sid,
                "start": {"call_control_id": "v3:abc", "call_session_id": "cs-1", "from": "+1555", "to": "+1556",
                          "custom_parameters": {}, "media_format": {"encoding": rng.choice(["PCMU", "PCMA", "L16"]),
                                                                     "sample_rate": 8000, "channels": 1}}}]
    during = [{"event": "media", "sequence_number": "2", "stream_id": sid,
               "media": {"track": "inbound", "chunk": "1", "timestamp": "20",
                         "payload": base64.b64encode(b"\xd5" * 160).decode()}},
              {"event": "dtmf", "sequence_number": "3", "stream_id": sid, "dtmf": {"digit": "1"}},
              {"event": "stop", "sequence_number": "4", "stream_id": sid, "stop": {"call_control_id": "v3:abc"}}]
    return opening, during


def vonage_templates(rng: random.Random) -> tuple[list[dict], list[dict]]:
    opening = [{"event": "websocket:connected", "content-type": rng.choice(["audio/l16;rate=16000",
                                                                          "audio/l16;rate=8000"])}]
    during = [{"event": "websocket:dtmf", "digit": "7", "duration": 250},
              {"event": "websocket:notify", "payload": {"mark": "x"}}]
    return opening, during


TEMPLATES = {"voice": native_templates, "twilio": twilio_templates, "telnyx": telnyx_templates,
             "vonage": vonage_templates}


def frame_for(rng: random.Random, endpoint: str, during: list[dict]) -> str | bytes:
    r = rng.random()
    if r < 0.35:  # audio-shaped binary (Vonage's media; elsewhere hostile binary)
        n = rng.choice([0, 1, 159, 160, 320, 321, 640, 641, rng.randint(0, 4000)])
        return rng.randbytes(n)
    if r < 0.6:
        return orjson.dumps(rng.choice(during)).decode()
    if r < 0.9:
        return orjson.dumps(mutate(rng, rng.choice(during))).decode()
    if r < 0.95:
        return orjson.dumps(hostile(rng)).decode()
    return rng.randbytes(rng.randint(1, 200)).decode("latin-1")  # not JSON at all


async def fuzz_connection(http: aiohttp.ClientSession, base: str, rng: random.Random, budget: int,
                          stats: Counter[str]) -> int:
    endpoint = rng.choice(ENDPOINTS)
    opening, during = TEMPLATES[endpoint](rng)
    n = 0
    try:
        async with http.ws_connect(f"{base}/v1/{endpoint}", max_msg_size=0, heartbeat=None) as ws:
            reader = asyncio.create_task(_drain(ws, stats))
            for msg in opening:
                if rng.random() < 0.9:
                    await ws.send_str(orjson.dumps(msg if rng.random() < 0.85 else mutate(rng, msg)).decode())
                    n += 1
            length = rng.randint(1, budget)
            for _ in range(length):
                if ws.closed:
                    break
                frame = frame_for(rng, endpoint, during)
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)
                n += 1
                if n % 50 == 0:
                    await asyncio.sleep(0)  # let the reader and others run
            end = rng.random()
            if end < 0.3 and not ws.closed:
                await ws.send_str('{"type":"session.end"}' if endpoint == "voice" else '{"event":"stop"}')
            if end < 0.15 and ws._response.connection is not None:  # noqa: SLF001 - a TCP abort on purpose
                ws._response.connection.transport.abort()  # noqa: SLF001
            await ws.close()
            reader.cancel()
    except (TimeoutError, aiohttp.ClientError, OSError) as e:
        stats[f"client_{type(e).__name__}"] += 1
    stats[f"endpoint_{endpoint}"] += 1
    return n


async def _drain(ws: aiohttp.ClientWebSocketResponse, stats: Counter[str]) -> None:
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            try:
                ev = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                stats["escape_non_json_text"] += 1
                continue
            if isinstance(ev, dict) and ev.get("type") == "error":
                code = ev.get("code")
                stats[f"error_{code}"] += 1
                if code not in STABLE_CODES:
                    stats["escape_unstable_error_code"] += 1


async def fuzz_http(base: str, rng: random.Random, n: int, stats: Counter[str]) -> None:
    paths = ["/admin/sessions", "/admin/sessions/x", "/admin/sessions/x/switch", "/admin/circuits",
             "/admin/circuits/gemini/reset", "/admin/circuits/%00/reset", "/readyz", "/healthz", "/metrics",
             "/static/../../etc/passwd", "/static/index.js", "/v1/voice", "/console", "/nope"]
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            method = rng.choice(["GET", "POST", "PUT", "DELETE"])
            body = orjson.dumps(hostile(rng)) if rng.random() < 0.8 else rng.randbytes(rng.randint(0, 500))
            headers = rng.choice([{}, {"Authorization": "Bearer " + "x" * rng.randint(1, 50)},
                                  {"Origin": "https://evil.example"}, {"Content-Type": "text/plain"}])
            try:
                async with http.request(method, base + rng.choice(paths), data=body, headers=headers) as r:
                    await r.read()
                    stats[f"http_{r.status}"] += 1
                    if r.status >= 500:
                        stats["escape_http_5xx"] += 1
            except (aiohttp.ClientError, OSError) as e:
                stats[f"http_client_{type(e).__name__}"] += 1


async def client_side(args: argparse.Namespace, port: int, stats: Counter[str]) -> int:
    base = f"ws://127.0.0.1:{port}"
    rng = random.Random(args.seed)
    sent = 0
    lock = asyncio.Lock()
    deadline = time.monotonic() + args.max_client_minutes * 60  # a budget: report what fitted
    async with aiohttp.ClientSession() as http:
        async def worker(wid: int) -> None:
            nonlocal sent
            wrng = random.Random(rng.random())
            while True:
                async with lock:
                    if sent >= args.frames or time.monotonic() > deadline:
                        return
                n = await fuzz_connection(http, base, wrng, args.frames_per_connection, stats)
                async with lock:
                    sent += n
                    stats["connections"] += 1

        await asyncio.gather(*(worker(i) for i in range(args.connections)),
                             fuzz_http(f"http://127.0.0.1:{port}", random.Random(args.seed + 9),
                                       args.http_requests, stats))
        # afterwards a clean call must still work end to end
        check = await run_call(http, base + "/v1/voice", provider="gemini", fallback=["gemini"], duration_s=6,
                               rng=random.Random(1))
        stats["final_call_ok"] = int(check.crashed is None and check.lost == 0 and sum(check.sent.values()) > 0)
    return sent


def provider_side(n: int, seed: int) -> Counter[str]:
    """Hostile provider frames into every adapter; returns counts (escapes included)."""
    from gateway.session_config import SessionConfig
    from providers.base import Endpoint
    from providers.registry import adapter_for

    rng = random.Random(seed)
    samples = {
        "gemini": [{"setupComplete": {}}, {"serverContent": {"modelTurn": {"parts": [{"inlineData": {
            "mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(bytes(480)).decode()}}]}}},
            {"serverContent": {"inputTranscription": {"text": "12", "finished": True}}},
            {"serverContent": {"turnComplete": True}}, {"serverContent": {"interrupted": True}},
            {"toolCall": {"functionCalls": [{"id": "f1", "name": "lookup", "args": {"q": 1}}]}},
            {"toolCallCancellation": {"ids": ["f1"]}}, {"goAway": {"timeLeft": "10s"}},
            {"sessionResumptionUpdate": {"newHandle": "h1", "resumable": True}}, {"usageMetadata": {}}],
        "openai": [{"type": "session.created", "session": {}}, {"type": "session.updated", "session": {}},
                   {"type": "input_audio_buffer.speech_started", "audio_start_ms": 10, "item_id": "i"},
                   {"type": "input_audio_buffer.committed", "item_id": "i", "audio_end_ms": 100},
                   {"type": "conversation.item.input_audio_transcription.completed", "item_id": "i",
                    "transcript": "12"},
                   {"type": "response.created", "response": {"id": "r"}},
                   {"type": "response.output_audio.delta", "item_id": "a", "delta": base64.b64encode(bytes(480)).decode()},
                   {"type": "response.output_audio_transcript.done", "item_id": "a", "transcript": "34"},
                   {"type": "response.function_call_arguments.done", "call_id": "c", "name": "f", "arguments": "{}"},
                   {"type": "response.done", "response": {"status": "completed", "output": []}},
                   {"type": "error", "error": {"type": "server_error", "code": "x", "message": "m"}},
                   {"type": "session_expired"}],
        "deepgram": [{"type": "Results", "start": 0.0, "duration": 1.0, "is_final": True, "speech_final": True,
                      "channel": {"alternatives": [{"transcript": "12", "words": []}]}},
                     {"type": "Metadata", "request_id": "r"}, {"type": "SpeechStarted", "timestamp": 0.1},
                     {"type": "UtteranceEnd", "last_word_end": 1.0}, {"type": "Error", "description": "x"}],
        "openai_live": [{"type": "session.started", "session": {"id": "s"}},
                        {"type": "session.input_transcript.delta", "delta": "1", "start_ms": 0, "end_ms": 100},
                        {"type": "session.output_transcript.delta", "delta": "2", "start_ms": 0, "end_ms": 100},
                        {"type": "session.output_audio.delta", "delta": base64.b64encode(bytes(480)).decode()},
                        {"type": "session.delegation.created", "delegation": {"id": "d", "target": "client",
                                                                              "name": "f", "arguments": "{}"}},
                        {"type": "response.event", "event": {"type": "response.done"}},
                        {"type": "session.usage.updated", "usage": {"seconds": 1.5}},
                        {"type": "session.closed", "reason": "expired"},
                        {"type": "error", "error": {"type": "server_error", "message": "m"}}],
        "deepgram_agent": [{"type": "Welcome", "request_id": "r"}, {"type": "SettingsApplied"},
                           {"type": "ConversationText", "role": "user", "content": "12"},
                           {"type": "ConversationText", "role": "assistant", "content": "12"},
                           {"type": "UserStartedSpeaking"}, {"type": "AgentStartedSpeaking", "total_latency": 0.1},
                           {"type": "AgentAudioDone"},
                           {"type": "FunctionCallRequest", "functions": [{"id": "f", "name": "lookup",
                                                                          "arguments": "{}", "client_side": True}]},
                           {"type": "FunctionCallCancelled"}, {"type": "InjectionRefused", "message": "m"},
                           {"type": "Error", "description": "x", "code": "c"}],
    }
    stats: Counter[str] = Counter()
    endpoint = Endpoint(base_url="wss://provider.test", api_key="k" * 16)
    for provider, msgs in samples.items():
        cls = adapter_for(provider)
        adapter = cls(SessionConfig(provider=provider), endpoint)
        for i in range(n // len(samples)):
            r = rng.random()
            if r < 0.5:
                frame: str | bytes = orjson.dumps(mutate(rng, rng.choice(msgs))).decode()
            elif r < 0.7:
                frame = orjson.dumps(rng.choice(msgs)).decode()
            elif r < 0.85:
                frame = orjson.dumps(hostile(rng)).decode()
            else:
                frame = rng.randbytes(rng.randint(0, 300))
            if provider == "gemini" and isinstance(frame, str) and rng.random() < 0.5:
                frame = frame.encode()  # Gemini sends JSON in binary frames
            try:
                adapter.parse(frame)
                if i % 97 == 0:
                    adapter.classify_close(rng.choice([None, 1000, 1001, 1006, 1007, 1008, 1011, 4000, 65535]),
                                           rng.choice(["", "x" * 300, "Deadline expired", "\ud800"]))
                    adapter.classify_handshake(rng.choice([400, 401, 403, 404, 429, 500, 503, 599]),
                                               rng.choice(["", "{", '{"error":{}}', "x" * 5000]))
            except Exception as e:  # noqa: BLE001 - counting escapes is the point
                stats[f"escape_{provider}_{type(e).__name__}"] += 1
                adapter = cls(SessionConfig(provider=provider), endpoint)
            if i % 5000 == 4999:
                adapter = cls(SessionConfig(provider=provider), endpoint)  # fresh state now and then
            stats[f"frames_{provider}"] += 1
    return stats


def _own_cpu_s() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=1_000_000, help="client frames over sockets")
    p.add_argument("--provider-frames", type=int, default=1_000_000, help="provider frames into the adapters")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--frames-per-connection", type=int, default=2000)
    p.add_argument("--http-requests", type=int, default=5000)
    p.add_argument("--max-client-minutes", type=float, default=float("inf"),
                   help="stop the client side after this long and report the frames sent so far")
    p.add_argument("--seed", type=int, default=20261206)
    p.add_argument("--out", default=str(REPO / "test-artifacts" / "fuzz-long"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    provider_stats = provider_side(args.provider_frames, args.seed)
    t1 = time.monotonic()
    fakes = start_fakes(log_path=out / "fakes.log")
    port = free_port()
    gw = start_gateway_probe(port=port, fakes=fakes, samples=out / "samples.jsonl", interval_s=30.0,
                             log_path=out / "gateway.log",
                             extra_env={"VG_LOG_LEVEL": "WARNING", "VG_MAX_FRAMES_PER_S": "100000",
                                        "VG_MAX_BYTES_PER_S": "64000000"})
    stats: Counter[str] = Counter()
    driver_cpu0 = _own_cpu_s()
    try:
        sent = asyncio.run(client_side(args, port, stats))
        alive = gw.alive()
        cpu = {"driver": round(_own_cpu_s() - driver_cpu0, 1), "gateway": round(cpu_seconds(gw.pid), 1),
               "fakes": round(sum(cpu_seconds(p.pid) for p in fakes.procs), 1)}
    finally:
        gw.stop()
        fakes.stop()
    log = (out / "gateway.log").read_text(errors="replace")
    error_lines = [line for line in log.splitlines() if '"level":"ERROR"' in line]
    escapes = {k: v for k, v in {**stats, **provider_stats}.items() if k.startswith("escape")}
    escapes["handler_exceptions"] = sum(log.count(m) for m in UNHANDLED)
    escapes["link_crashed"] = log.count('"event":"link.crashed"')
    escapes["gateway_died"] = int(not alive)
    escapes["final_call_failed"] = 1 - stats.get("final_call_ok", 0)
    report = {
        "command": " ".join(sys.argv), "client_frames": sent, "client_connections": stats["connections"],
        "http_requests": args.http_requests, "provider_frames": sum(v for k, v in provider_stats.items()
                                                                   if k.startswith("frames_")),
        "seconds": {"provider_side": round(t1 - t0, 1), "client_side": round(time.monotonic() - t1, 1)},
        "cpu_s_client_side": cpu,
        "escapes": escapes, "escapes_total": sum(escapes.values()),
        "error_log_lines": len(error_lines), "error_log_events": dict(Counter(
            orjson.loads(line).get("event", "?") for line in error_lines if line.startswith("{"))),
        "client_stats": dict(sorted(stats.items())),
    }
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    (out / "report.json").write_text(text + "\n")
    print(text)
    return 1 if report["escapes_total"] else 0


if __name__ == "__main__":
    sys.exit(main())
