"""Simulated callers for the long runs (soak, chaos): native-protocol calls that speak DTMF "words"
in real time and check what comes back.

Each call streams PCM16 16 kHz in 20 ms frames, paced by absolute deadlines; its audio is a series
of utterances (4 random digits 0-9, no digit twice in a row, 100 ms tones, 600 ms trailing silence,
so every fake ends the user turn after each) separated by silence. A word is one utterance; the
fakes' user transcripts (`transcript.final`, role user) are compared with the words sent:
lost = sent but never heard, duplicated = heard more often than sent. A call "crashed" when its
socket closed before `session.ended`, or `session.ended` never came after `session.end`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import aiohttp
import orjson

from audio.dtmf import generate_dtmf

RATE_HZ = 16000
FRAME_BYTES = RATE_HZ * 2 * 20 // 1000  # 640: 20 ms of PCM16 mono
SILENCE = bytes(FRAME_BYTES)
TAIL_S = 2.0  # silence after the last word before session.end: the last turn gets finalized
MAX_BEHIND_S = 0.5  # a caller this far behind its schedule re-anchors it (as a phone's jitter buffer would)


@lru_cache(maxsize=4096)
def utterance(word: str) -> bytes:
    pcm = generate_dtmf(word, RATE_HZ, lead_silence_ms=100, trail_silence_ms=600)
    pad = -len(pcm) % FRAME_BYTES
    return pcm + bytes(pad)


def random_word(rng: random.Random) -> str:
    out = [rng.choice("0123456789")]
    while len(out) < 4:
        d = rng.choice("0123456789")
        if d != out[-1]:
            out.append(d)
    return "".join(out)


@dataclass
class CallResult:
    provider: str
    sent: Counter[str] = field(default_factory=Counter)
    heard: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    switches: list[str] = field(default_factory=list)
    crashed: str | None = None  # why, when the call did not end cleanly
    session_id: str = ""
    started: bool = False
    reply_bytes: int = 0
    # for attributing losses (benchmarks/loss_causes.py): when each word was sent, and when the events
    # that interrupt a call arrived (client monotonic time)
    word_times: list[tuple[float, str]] = field(default_factory=list)
    timeline: list[tuple[float, str, str]] = field(default_factory=list)  # (t, event type, detail)
    dropped_chunks: int = 0  # the gateway's count in session.ended totals
    ended_at: float = 0.0

    @property
    def lost(self) -> int:
        return sum((self.sent - self.heard).values())

    @property
    def duplicated(self) -> int:
        return sum((self.heard - self.sent).values())


def frames_for(rng: random.Random, duration_s: float) -> tuple[list[bytes], list[tuple[int, str]]]:
    """The call's frames and (index of the frame completing each word, word)."""
    frames: list[bytes] = []
    words: list[tuple[int, str]] = []
    limit = int((duration_s - TAIL_S) * 50)
    while len(frames) < limit:
        word = random_word(rng)
        pcm = utterance(word)
        frames.extend(pcm[i:i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES))
        words.append((len(frames) - 1, word))
        frames.extend([SILENCE] * rng.randint(5, 40))  # 0.1-0.8 s between words
    frames.extend([SILENCE] * int(TAIL_S * 50))
    return frames, words


async def run_call(http: aiohttp.ClientSession, url: str, *, provider: str, fallback: list[str],
                   duration_s: float, rng: random.Random, token: str | None = None,
                   on_started: Any = None, options: dict[str, Any] | None = None,
                   label: str | None = None) -> CallResult:
    """One call from connect to session.ended. Never raises: failures are in the result.
    `options`: the call's provider_options; `label`: what the result is filed under (default: provider)."""
    result = CallResult(provider=label or provider)
    frames, words = frames_for(rng, duration_s)
    ended = asyncio.Event()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        async with http.ws_connect(url, headers=headers, max_msg_size=0, heartbeat=None) as ws:
            start: dict[str, Any] = {"type": "session.start", "provider": provider, "fallback": fallback}
            if options:
                start["provider_options"] = options
            await ws.send_str(orjson.dumps(start).decode())
            started = asyncio.Event()
            reader = asyncio.create_task(_read(ws, result, started, ended))
            try:
                await asyncio.wait_for(started.wait(), 30)
            except TimeoutError:
                result.crashed = "no session.started"
                reader.cancel()
                return result
            if on_started is not None:
                on_started(result)
            t0 = time.monotonic()
            wi = 0
            for k, frame in enumerate(frames):
                delay = t0 + k * 0.02 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -MAX_BEHIND_S:  # this process was starved: go on in real time, not a flood
                    t0 -= delay
                if ws.closed:
                    break
                await ws.send_bytes(frame)
                while wi < len(words) and words[wi][0] == k:
                    result.sent[words[wi][1]] += 1
                    result.word_times.append((time.monotonic(), words[wi][1]))
                    wi += 1
            if not ws.closed:
                result.ended_at = time.monotonic()
                await ws.send_str('{"type":"session.end"}')
            try:
                await asyncio.wait_for(ended.wait(), 10)
            except TimeoutError:
                result.crashed = result.crashed or "no session.ended"
            reader.cancel()
    except (TimeoutError, aiohttp.ClientError, OSError) as e:
        result.crashed = result.crashed or f"{type(e).__name__}"
    return result


async def _read(ws: aiohttp.ClientWebSocketResponse, result: CallResult, started: asyncio.Event,
                ended: asyncio.Event) -> None:
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.BINARY:
            result.reply_bytes += len(msg.data)
            continue
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        ev = orjson.loads(msg.data)
        kind = ev.get("type")
        result.events[kind] += 1
        if kind == "session.started":
            result.started = True
            result.session_id = ev.get("session_id", "")
            started.set()
        elif kind == "transcript.final" and ev.get("role") == "user" and ev.get("text"):
            result.heard[ev["text"]] += 1
        elif kind == "provider.switched":
            result.switches.append(f"{ev.get('from')}->{ev.get('to')}:{ev.get('reason')}")
            result.timeline.append((time.monotonic(), kind, str(ev.get("reason"))))
        elif kind == "error":
            result.errors[ev.get("code", "?")] += 1
            result.timeline.append((time.monotonic(), "error", str(ev.get("code"))))
        elif kind in ("connection.reconnecting", "connection.reconnected", "connection.failed"):
            result.timeline.append((time.monotonic(), kind, str(ev.get("attempt", ""))))
        elif kind == "session.ended":
            totals = ev.get("totals") or {}
            result.dropped_chunks = int(totals.get("dropped_audio_chunks") or 0)
            ended.set()
            return
    if not ended.is_set():
        result.crashed = result.crashed or f"socket closed ({ws.close_code})"
        ended.set()


def summarize(results: list[CallResult]) -> dict[str, Any]:
    events: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    crashed: Counter[str] = Counter()
    for r in results:
        events.update(r.events)
        errors.update(r.errors)
        if r.crashed:
            crashed[r.crashed] += 1
    return {
        "calls": len(results),
        "words_sent": sum(sum(r.sent.values()) for r in results),
        "words_heard": sum(sum(r.heard.values()) for r in results),
        "words_lost": sum(r.lost for r in results),
        "words_duplicated": sum(r.duplicated for r in results),
        "calls_with_loss": sum(1 for r in results if r.lost),
        "crashed": sum(crashed.values()), "crash_reasons": dict(crashed),
        "switches": sum(len(r.switches) for r in results),
        "reconnecting_events": events["connection.reconnecting"],
        "reconnected_events": events["connection.reconnected"],
        "failed_events": events["connection.failed"],
        "error_codes": dict(errors),
    }
