"""Load generator process: N simulated calls sending 20 ms frames in real time, recording per frame
when it left and when its echo came back (CLOCK_MONOTONIC, comparable with the echo fake's stamps).

    python -m benchmarks.loadgen SPEC.json      (driven by benchmarks/load.py)

Protocol with the parent, one line each on stdout/stdin: the calls connect and finish their setup,
then it prints `ready OK FAILED`; the parent answers `go T0_NS`; every call sends frame k at
T0 + phase + k·20 ms (phase: a per-call offset in [0, 20) ms, as independent callers would), waits
up to `drain_s` for the last echoes, hangs up, writes SPEC.out (npz) and prints `done`.

Call kinds: `native` (gateway /v1/voice, binary PCM16 frames), `twilio` (gateway /v1/twilio, Twilio
Media Streams JSON, docs/telephony.md §1), and the provider protocols spoken directly, for the
baselines: `gemini` (docs/providers/gemini.md §2), `openai` (docs/providers/openai.md §2) and
`openai_live` (GPT-Live).

It runs on picows (benchmarks/ws_messages.py says why): one task sends every call's frames (see
stream), and each echo is stamped and decoded in picows' per-frame callback.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from picows import WSMsgType, ws_connect  # noqa: E402

from audio.formats import MULAW_8K, PCM16_16K, PCM16_24K, AudioFormat  # noqa: E402
from benchmarks.marker import (  # noqa: E402
    MARKER,
    SEQ_MODULUS,
    SILENCE,
    MarkerStream,
    marker_frame,
    silence_frame,
    tone_frames,
)
from benchmarks.ws_messages import BINARY, TEXT, MessageListener  # noqa: E402

FRAME_NS = 20_000_000
DIGIT_EVERY = 25  # faults mode: one DTMF digit (4 tone frames) every 0.5 s of call audio
DIGIT_FIRST = 12


TAIL_FRAMES = 5  # unmeasured silence after the last marker: a real call goes on after any frame


def frame_plan(n_frames: int, digits: bool) -> list[tuple[str, int]]:
    """What each frame carries: ("m", seq) a marker, ("t", index) tone frame `index` of a digit,
    ("s", 0) silence. The silent tail pushes the last markers through anything the gateway holds
    back until more audio comes (a resampler's filter delay, a partial outbound frame)."""
    plan: list[tuple[str, int]] = [("m", k) for k in range(n_frames)]
    if digits:
        for start in range(DIGIT_FIRST, n_frames - 20, DIGIT_EVERY):
            for i in range(4):
                plan[start + i] = ("t", start * 16 + i)  # digit number start // 25 …, tone frame i
    return plan + [("s", 0)] * TAIL_FRAMES


def digit_at(start: int) -> str:
    return "0123456789"[(start // DIGIT_EVERY) % 10]


def frame_audio(kind: str, value: int, fmt: AudioFormat) -> bytes:
    """The audio of one plan entry (see frame_plan)."""
    if kind == "m":
        return marker_frame(value, fmt)
    if kind == "s":
        return silence_frame(fmt)
    return tone_frames(digit_at(value // 16), fmt)[value % 16]


class Call(MessageListener):
    """One simulated call: open(), then the streamer sends its frames (send_frame) while picows
    calls back with the echoes."""

    in_fmt: AudioFormat
    out_fmt: AudioFormat

    def __init__(self, spec: dict[str, Any], tag: str) -> None:
        self.spec = spec
        self.tag = tag
        self.decoder = MarkerStream(self.out_fmt, resync=True)
        self.recv_ns = [-1] * SEQ_MODULUS  # a list: per-frame numpy indexing costs more (see stream)
        self.duplicates = self.reordered = self.garbled = 0
        self._max_seq = -1
        self.events: Counter[str] = Counter()
        self.heard_digits = ""
        self._ready = asyncio.Event()

    # -- subclass hooks ------------------------------------------------------------------------
    url_path = ""

    def headers(self) -> dict[str, str]:
        return {}

    def handshake(self) -> None:
        """Send the setup messages; set _ready when the peer acknowledged them."""

    def audio_message(self, k: int, audio: bytes, b64: str) -> bytes:
        """Frame k's message; `b64` is `audio` in base64 (the same for every call: encoded once)."""
        raise NotImplementedError

    def on_text(self, msg: Any) -> bytes | None:
        """A text/JSON message from the peer: the reply audio it carries, if any."""
        return None

    def hang_up(self) -> None:
        pass

    # -- the common part ------------------------------------------------------------------------
    async def open(self, base_url: str, timeout_s: float) -> None:
        await ws_connect(lambda: self, base_url + self.url_path, extra_headers=self.headers(),
                         websocket_handshake_timeout=timeout_s, max_frame_size=16 * 1024 * 1024)
        self.handshake()
        await asyncio.wait_for(self._ready.wait(), timeout_s)

    _binary_audio = False
    _message_type = TEXT  # how audio goes out

    def on_message(self, msg_type: WSMsgType, data: bytes | memoryview, now_ns: int) -> None:
        if msg_type is BINARY and self._binary_audio:
            audio: bytes | None = bytes(data)
        else:
            audio = self.on_text(orjson.loads(data))
        if audio:
            self._record(audio, now_ns)

    def _record(self, audio: bytes, now: int) -> None:
        for d in self.decoder.feed(audio):
            if d.kind == MARKER:
                if self.recv_ns[d.seq] >= 0:
                    self.duplicates += 1
                    continue
                self.recv_ns[d.seq] = now
                if d.seq < self._max_seq:
                    self.reordered += 1
                self._max_seq = max(self._max_seq, d.seq)
            elif d.kind != SILENCE:
                self.garbled += 1

    def send_frame(self, k: int, audio: bytes, b64: str) -> int | None:
        """Send frame k of the plan; when it left (CLOCK_MONOTONIC), None once the call is closed."""
        message = self.audio_message(k, audio, b64)
        now = time.monotonic_ns()
        if self.closed or self.transport is None:
            return None
        self.transport.send(self._message_type, message)
        return now

    async def close_call(self) -> None:
        with contextlib.suppress(Exception):
            self.hang_up()
        with contextlib.suppress(Exception):
            await self.close_within(2.0)


class NativeCall(Call):
    url_path = "/v1/voice"
    _binary_audio = True

    _message_type = BINARY

    def __init__(self, spec: dict[str, Any], tag: str) -> None:
        self.in_fmt = AudioFormat(encoding=spec["in_encoding"], sample_rate_hz=spec["in_rate"])
        self.out_fmt = AudioFormat(encoding=spec["out_encoding"], sample_rate_hz=spec["out_rate"])
        super().__init__(spec, tag)

    def handshake(self) -> None:
        self.send(TEXT, orjson.dumps({
            "type": "session.start", "provider": self.spec["provider"],
            "fallback": self.spec.get("fallback") or [self.spec["provider"]], "instructions": self.tag,
            "audio": {"input": self.in_fmt.to_wire(), "output": self.out_fmt.to_wire()}}))

    def audio_message(self, k: int, audio: bytes, b64: str) -> bytes:
        return audio

    def on_text(self, msg: Any) -> None:
        kind = msg.get("type", "?")
        self.events[kind] += 1
        if kind == "session.started":
            self._ready.set()
        elif kind == "transcript.final" and msg.get("role") == "user":
            self.heard_digits += msg.get("text", "")
        return None


class TwilioCall(Call):
    url_path = "/v1/twilio"
    in_fmt = MULAW_8K
    out_fmt = MULAW_8K

    def __init__(self, spec: dict[str, Any], tag: str) -> None:
        super().__init__(spec, tag)
        self.sid = "MZ" + tag.encode().hex()[-32:].rjust(32, "0")

    def handshake(self) -> None:
        params = {"provider": self.spec["provider"], "instructions": self.tag,
                  "fallback": ",".join(self.spec.get("fallback") or [self.spec["provider"]])}
        self.send(TEXT, b'{"event":"connected","protocol":"Call","version":"1.0.0"}')
        self.send(TEXT, orjson.dumps({"event": "start", "sequenceNumber": "1", "streamSid": self.sid,
                                             "start": {"streamSid": self.sid, "accountSid": "AC" + "0" * 32,
                                                       "callSid": "CA" + self.sid[2:], "tracks": ["inbound"],
                                                       "customParameters": params,
                                                       "mediaFormat": {"encoding": "audio/x-mulaw",
                                                                       "sampleRate": 8000, "channels": 1}}}))
        self._ready.set()  # Twilio gets no answer to `start`

    def audio_message(self, k: int, audio: bytes, b64: str) -> bytes:
        return (f'{{"event":"media","sequenceNumber":"{k + 2}","streamSid":"{self.sid}","media":'
                f'{{"track":"inbound","chunk":"{k + 1}","timestamp":"{k * 20}","payload":"{b64}"}}}}').encode()

    def on_text(self, msg: Any) -> bytes | None:
        event = msg.get("event")
        if event == "media":
            return binascii.a2b_base64(msg["media"]["payload"])
        self.events[str(event)] += 1
        if event == "mark":  # instant playout: the mark has "played"
            name = msg.get("mark", {}).get("name", "")
            self.send(TEXT, orjson.dumps(
                {"event": "mark", "sequenceNumber": "0", "streamSid": self.sid, "mark": {"name": name}}))
        return None

    def hang_up(self) -> None:
        self.send(TEXT, orjson.dumps({"event": "stop", "sequenceNumber": "0", "streamSid": self.sid,
                                      "stop": {"accountSid": "AC", "callSid": "CA"}}))


class GeminiCall(Call):
    url_path = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    in_fmt = PCM16_16K
    out_fmt = PCM16_24K

    def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.spec["api_key"]}

    def handshake(self) -> None:
        self.send(TEXT, orjson.dumps({"setup": {
            "model": "models/gemini-2.5-flash-native-audio-preview-12-2025",
            "generationConfig": {"responseModalities": ["AUDIO"]},
            "systemInstruction": {"parts": [{"text": self.tag}]}}}))

    def audio_message(self, k: int, audio: bytes, b64: str) -> bytes:
        return ('{"realtimeInput":{"audio":{"data":"' + b64 + '","mimeType":"audio/pcm;rate=16000"}}}').encode()

    def on_text(self, msg: Any) -> bytes | None:
        content = msg.get("serverContent")
        if content is not None and "modelTurn" in content:
            return binascii.a2b_base64(content["modelTurn"]["parts"][0]["inlineData"]["data"])
        if "setupComplete" in msg:
            self._ready.set()
        return None


class OpenAICall(Call):
    url_path = "/v1/realtime?model=gpt-realtime"

    def __init__(self, spec: dict[str, Any], tag: str) -> None:
        self.in_fmt = self.out_fmt = MULAW_8K if spec.get("g711") else PCM16_24K
        super().__init__(spec, tag)

    def headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.spec["api_key"]}

    def _format(self) -> dict[str, Any]:
        return {"type": "audio/pcmu"} if self.in_fmt == MULAW_8K else {"type": "audio/pcm", "rate": 24000}

    def audio_message(self, k: int, audio: bytes, b64: str) -> bytes:
        return ('{"type":"input_audio_buffer.append","audio":"' + b64 + '"}').encode()

    def on_text(self, msg: Any) -> bytes | None:
        kind = msg.get("type")
        if kind == "response.output_audio.delta":
            return binascii.a2b_base64(msg["delta"])
        if kind == "session.created":
            self.send(TEXT, orjson.dumps({
                "type": "session.update", "session": {
                    "type": "realtime", "instructions": self.tag, "output_modalities": ["audio"],
                    "audio": {"input": {"format": self._format(), "turn_detection": None},
                              "output": {"format": self._format()}}}}))
        elif kind == "session.updated":
            self._ready.set()
        return None


class LiveCall(Call):
    """OpenAI GPT-Live direct: session.start with the one audio format, then appends."""

    url_path = "/v1/live/sessions"

    def __init__(self, spec: dict[str, Any], tag: str) -> None:
        self.in_fmt = self.out_fmt = MULAW_8K if spec.get("g711") else PCM16_24K
        super().__init__(spec, tag)

    def headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.spec["api_key"]}

    def handshake(self) -> None:
        fmt = {"type": "audio/pcmu", "rate": 8000} if self.in_fmt == MULAW_8K else {"type": "audio/pcm", "rate": 24000}
        self.send(TEXT, orjson.dumps({"type": "session.start", "session": {
            "model": "gpt-live-1", "instructions": self.tag, "audio": {"format": fmt}}}))

    def audio_message(self, k: int, audio: bytes, b64: str) -> bytes:
        return ('{"type":"session.input_audio.append","audio":"' + b64 + '"}').encode()

    def on_text(self, msg: Any) -> bytes | None:
        kind = msg.get("type")
        if kind == "session.output_audio.delta":
            return binascii.a2b_base64(msg["delta"])
        if kind == "session.started":
            self._ready.set()
        return None


CALL_KINDS: dict[str, type[Call]] = {"native": NativeCall, "twilio": TwilioCall, "gemini": GeminiCall,
                                     "openai": OpenAICall, "openai_live": LiveCall}


async def run(spec: dict[str, Any]) -> None:
    import uvloop  # noqa: F401 - the loop policy is set by main()

    tags = [f"{spec['run']}/{i}" for i in range(spec["calls"])]
    plan = frame_plan(int(spec["duration_s"] * 50), bool(spec.get("digits")))
    rng = random.Random(spec.get("seed", 0))
    calls = [CALL_KINDS[spec["kind"]](spec, tag) for tag in tags]
    gate = asyncio.Semaphore(50)  # don't storm the accept queue

    async def open_one(call: Call) -> bool:
        async with gate:
            try:
                await call.open(spec["url"], spec.get("open_timeout_s", 10.0))
                return True
            except Exception as e:  # counted and reported; the run goes on without it
                print(f"open failed: {type(e).__name__}: {e}", file=sys.stderr)
                return False

    opened = await asyncio.gather(*(open_one(c) for c in calls))
    live = [i for i, ok in enumerate(opened) if ok]
    print(f"ready {len(live)} {len(calls) - len(live)}", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    t0 = int(line.split()[1])
    n = len(plan)
    send_ns = [[-1] * n for _ in calls]  # lists while streaming: cheaper per frame than numpy items
    late_ns = [[-1] * n for _ in calls]
    phases = {i: rng.randrange(FRAME_NS) for i in live}
    await stream(calls, phases, t0, plan, send_ns, late_ns)
    await _drain([calls[i] for i in live], [send_ns[i] for i in live], spec.get("drain_s", 1.0))
    await asyncio.gather(*(c.close_call() for c in calls))
    digits_sent = "".join(digit_at(v // 16) for kind, v in plan if kind == "t" and v % 16 == 0)
    np.savez(spec["out"], tags=np.array(tags, dtype=str), send_ns=np.array(send_ns, dtype=np.int64).reshape(len(calls), n),
             late_ns=np.array(late_ns, dtype=np.int64).reshape(len(calls), n),
             recv_ns=np.array([c.recv_ns[:n] for c in calls], dtype=np.int64).reshape(len(calls), n),
             opened=np.array(opened, dtype=bool),
             duplicates=np.array([c.duplicates for c in calls]), reordered=np.array([c.reordered for c in calls]),
             garbled=np.array([c.garbled for c in calls]),
             realignments=np.array([c.decoder.realignments for c in calls]), heard_digits=np.array([c.heard_digits for c in calls]),
             digits_sent=np.array(digits_sent), events=np.array(orjson.dumps(
                 sum((c.events for c in calls), Counter())).decode()))
    print("done", flush=True)


async def stream(calls: list[Call], phases: dict[int, int], t0_ns: int, plan: list[tuple[str, int]],
                 send_ns: list[list[int]], late_ns: list[list[int]]) -> None:
    """Call i sends frame k at t0 + phases[i] + k·20 ms. One task for all calls: it sleeps until
    the next frame is due and then sends every frame due by then in one pass (a task per call
    woke once per frame each; the timers fire at millisecond resolution either way). The frame's
    audio and its base64 are the same for every call (one call kind and format per process): made
    once per step."""
    order = sorted(phases, key=phases.__getitem__)
    if not order:
        return
    fmt = calls[order[0]].in_fmt
    for k, (kind, value) in enumerate(plan):
        base = t0_ns + k * FRAME_NS
        audio = frame_audio(kind, value, fmt)
        b64 = binascii.b2a_base64(audio, newline=False).decode("ascii")
        for i in order:
            due = base + phases[i]
            if due > time.monotonic_ns():
                await asyncio.sleep((due - time.monotonic_ns()) / 1e9)
            try:
                sent = calls[i].send_frame(k, audio, b64)
            except Exception:  # the connection broke under us: this call is over, the others go on
                calls[i].closed = True
                sent = None
            if sent is None:
                continue  # the call is closed: it sends nothing more
            late_ns[i][k] = sent - due
            if kind == "m":
                send_ns[i][value] = sent


async def _drain(calls: list[Call], send_ns: list[list[int]], drain_s: float) -> None:
    """Wait for outstanding echoes, up to drain_s."""
    deadline = time.monotonic() + drain_s
    while time.monotonic() < deadline:
        missing = sum(1 for c, sent in zip(calls, send_ns, strict=True)
                      for s, r in zip(sent, c.recv_ns, strict=False) if s >= 0 and r < 0)
        if missing == 0:
            return
        await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    import uvloop

    args = sys.argv[1:] if argv is None else argv
    spec = orjson.loads(Path(args[0]).read_bytes())
    uvloop.run(run(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
