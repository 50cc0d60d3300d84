"""Per-frame cost of the call session + provider link audio path, both directions, without sockets.

    PYTHONPATH=<checkout> .venv/bin/python benchmarks/session_path.py

A Twilio-shaped call (μ-law 8 kHz both ways) on Gemini: uplink = CallSession.push_audio of one
160-byte frame through the replay buffer, the link's converter and the adapter to a socket that
discards; downlink = one 20 ms Gemini reply chunk through the session's reply path to a sink that
discards. Best and median of 25 runs of 5000, in µs per frame. Point PYTHONPATH at two checkouts
(e.g. a `git worktree` of the baseline) and run them interleaved in one session to compare: this is
how the structure refactor (issue 11) was checked for hot-path cost. It sets the link's socket and
converter directly (a benchmark, not a test), so it follows the link's internals.
"""
import asyncio
import sys
import time
from pathlib import Path

# Run as a script, this directory comes first on sys.path and benchmarks/audio.py would shadow the
# audio package: drop it (the checkout under test comes from PYTHONPATH).
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from audio.convert import FormatConverter  # noqa: E402
from audio.formats import MULAW_8K, PCM16_24K  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.events import ReplyAudio  # noqa: E402
from gateway.link import LinkState, ProviderLink  # noqa: E402
from gateway.runtime import Runtime  # noqa: E402
from gateway.session import CallSession  # noqa: E402
from gateway.session_config import SessionConfig  # noqa: E402
from providers.base import Endpoint  # noqa: E402
from providers.gemini import GeminiAdapter  # noqa: E402


class Sock:
    is_closed = False
    closed_by_us = False
    async def send(self, frame): pass
    def send_now(self, frame): return None
    async def close(self, code=1000): pass

class Sink:
    exact_frames = True
    async def send_json(self, payload): pass
    async def send_audio(self, data, item_id=None): pass
    def send_audio_now(self, data, item_id=None): return None
    async def turn_completed(self): pass
    async def flush_audio(self): return None

async def main(n: int = 5000, repeat: int = 25) -> None:
    rt = Runtime(Settings())
    cfg = SessionConfig(provider="gemini", fallback=("gemini",), input_format=MULAW_8K, output_format=MULAW_8K)
    s = CallSession(runtime=rt, config=cfg, client="twilio", sink=Sink())
    ep = Endpoint(base_url="ws://x", api_key="k")
    adapter = GeminiAdapter(cfg, ep)
    link = ProviderLink(provider="gemini", adapter_factory=lambda: adapter, breaker=rt.breakers.get("gemini"),
                        connector=rt.connector, clock=rt.clock, policy=rt.settings.reconnect, replay=s.replay,
                        sink=s, history=list, session_id=s.id)
    link.adapter, link._sock = adapter, Sock()
    link._converter = FormatConverter(cfg.input_format, adapter.input_format)
    link.state = LinkState.UP
    owner = getattr(s, "failover", s)
    owner.link = link
    from gateway.session import SessionState
    owner.state = SessionState.ACTIVE
    frame = b"\xff" * 160
    reply = ReplyAudio(data=b"\x00\x01" * 480, fmt=PCM16_24K, item_id="i")
    up, down = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            await s.push_audio(frame)
        up.append((time.perf_counter() - t0) / n * 1e6)
        t0 = time.perf_counter()
        for _ in range(n):
            await s.on_provider_event(link, reply)
        down.append((time.perf_counter() - t0) / n * 1e6)
    print(f"uplink µs/frame min {min(up):.2f} median {sorted(up)[repeat//2]:.2f}; "
          f"downlink µs/frame min {min(down):.2f} median {sorted(down)[repeat//2]:.2f}")

asyncio.run(main())
