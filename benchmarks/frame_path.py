"""Per-frame CPU of the gateway's own code on the two load-benchmark paths, without sockets: from the
client connection's frame handler to the provider socket's send (uplink), and from the link's read
loop to the client socket's send (downlink).

    .venv/bin/python benchmarks/frame_path.py [--base DIR] [--rounds 6] [--n 4000]

- twilio-pcmu: TelephonyConnection.on_frame of a Twilio media message → CallSession → ProviderLink →
  OpenAI `audio/pcmu` (no transcoding); an OpenAI audio delta through the link's read loop → session →
  TelephonySink (20 ms μ-law frames, marks) → a WebSocket stand-in that discards.
- native: NativeConnection.on_frame of 20 ms PCM16 16 kHz → Gemini; a Gemini reply (24 kHz) through
  the read loop → NativeSink.

With `--base DIR` (e.g. `git archive HEAD~3 | tar -x -C DIR`) each round runs one worker per checkout
(PYTHONPATH = that checkout), base first; the figure per side is the best round (a shared machine
disturbs some bursts; alternating exposes both to the same periods). µs per frame. It sets the
link's socket, adapter and state directly (a benchmark, not a test), so it follows their internals.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

WORKER = r'''
import asyncio, base64, json, sys, time
import orjson
from audio.convert import FormatConverter
from audio.formats import MULAW_8K, PCM16_16K, PCM16_24K
from benchmarks.echo_provider import gemini_reply, openai_reply
from gateway.auth import TokenClaims
from gateway.clients.native import NativeConnection
from gateway.clients.telephony import TelephonyConnection
from gateway.config import Settings
from gateway.provider_socket import Closed
from gateway.runtime import Runtime
from gateway.states import LinkState, SessionState

n = int(sys.argv[1])
from gateway.limits import ConnectionLimits
UNLIMITED = ConnectionLimits(max_frames_per_s=1e12, max_bytes_per_s=1e15)


class Protocol:
    _paused = False
    async def _drain_helper(self): pass


class Writer:  # aiohttp's WebSocketWriter as gateway/ws_direct.py's frame_sender uses it: discards
    def __init__(self):  # instance attributes, as aiohttp's (class ones would not be specialised on 3.11)
        self.compress, self._closing, self._output_size, self._limit, self.protocol = 0, False, 0, 1 << 62, Protocol()
    def _write_websocket_frame(self, data, opcode, rsv): pass


class WS:  # the client WebSocket: sends are discarded
    closed = False
    _writer = Writer()
    async def send_str(self, data): pass
    async def send_bytes(self, data): pass
    async def send_frame(self, data, kind): pass


class Sock:  # the provider socket: sends discarded; read()/receive() give `left` reply frames, then a close
    closed_by_us = True
    is_closed = False
    def __init__(self): self.left, self.frame = 0, None
    async def send(self, frame): pass
    def send_now(self, frame): return None
    async def receive(self):  # checkouts before the parser-callback frame path
        if self.left:
            self.left -= 1
            return self.frame
        return Closed(1000, "")
    async def read(self, on_frame):  # as ProviderSocket.read: frames to the handler, then how it closed
        while self.left:
            self.left -= 1
            pending = on_frame(self.frame)
            if pending is not None and await pending:
                return None
        return Closed(1000, "")
    async def close(self, code=1000, reason=""): pass


def wire(session, provider):
    link = session.failover._new_link(provider)
    adapter = link._new_adapter()
    link.adapter, link._sock = adapter, Sock()
    link._converter = FormatConverter(session.config.input_format, adapter.input_format)
    link.state = LinkState.UP
    session.failover.link, session.failover.state = link, SessionState.ACTIVE
    session.replay.new_connection(link)
    return link


async def timed(fn):
    t0 = time.perf_counter()
    await fn()
    return (time.perf_counter() - t0) / n * 1e6


async def main():
    rt = Runtime(Settings())
    from providers.base import Endpoint
    for name, url in (("openai", "ws://127.0.0.1:1/v1"), ("gemini", "ws://127.0.0.1:1")):
        rt.endpoints[name] = Endpoint(base_url=url, api_key="k")
    out = {}
    # -- twilio-pcmu ---------------------------------------------------------------------------
    tc = TelephonyConnection(WS(), "twilio", rt)
    tc.limiter.limits = UNLIMITED
    start = orjson.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "callSid": "CA1", "customParameters": {"provider": "openai"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}).decode()
    [ev] = tc.ser.parse(start)
    from gateway.clients.telephony import config_from_start
    from gateway.session import CallSession
    tc.sink.started()
    tc.session = CallSession(runtime=rt, config=config_from_start(ev, default_provider="openai",
                             default_fallback=()), client="twilio", sink=tc.sink)
    link = wire(tc.session, "openai")
    media = ('{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound",'
             '"chunk":"1","timestamp":"20","payload":"' + base64.b64encode(bytes(160)).decode() + '"}}')
    async def up():  # as receive_frames does: the connection's ceilings, then the handler
        check, size = tc.limiter.check, len(media)
        for _ in range(n):
            check(size)
            pending = tc.on_frame(media)  # None when handled without a coroutine (gateway/ws_direct.py)
            if pending is not None:
                await pending
    reply = openai_reply(7, MULAW_8K)
    async def down():
        link._sock.left, link._sock.frame = n, reply
        tc.sink._next_at = -1e9  # always the fast path: this measures CPU, not pacing
        await link._read_until_closed()
    await up(); await down()
    out["twilio-pcmu up"] = min([await timed(up) for _ in range(3)])
    out["twilio-pcmu down"] = min([await timed(down) for _ in range(3)])
    tc.sink.open = False
    await tc.sink.close()
    # -- native ----------------------------------------------------------------------------------
    nc = NativeConnection(WS(), TokenClaims(subject="bench", kind="anonymous", allow_switch=True), rt)
    nc.limiter.limits = UNLIMITED
    from gateway.session_config import SessionConfig
    nc.session = CallSession(runtime=rt, config=SessionConfig(provider="gemini", input_format=PCM16_16K,
                             output_format=PCM16_24K), client="native", sink=nc.sink)
    nlink = wire(nc.session, "gemini")
    pcm = bytes(640)
    async def nup():
        check = nc.limiter.check
        for _ in range(n):
            check(640)
            pending = nc.on_frame(pcm)
            if pending is not None:
                await pending
    greply = gemini_reply(7).decode()
    async def ndown():
        nlink._sock.left, nlink._sock.frame = n, greply
        await nlink._read_until_closed()
    await nup(); await ndown()
    out["native up"] = min([await timed(nup) for _ in range(3)])
    out["native down"] = min([await timed(ndown) for _ in range(3)])
    print(json.dumps(out))

asyncio.run(main())
'''


def run(checkout: Path, n: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, "-c", WORKER, str(n)], env=env, cwd=checkout, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise SystemExit(f"worker failed in {checkout}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", type=Path, help="another checkout to compare with")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--n", type=int, default=4000, help="frames per timed burst")
    args = p.parse_args()
    sides = ([("base", args.base.resolve())] if args.base else []) + [("this", REPO)]
    best: dict[str, dict[str, float]] = {name: {} for name, _ in sides}
    for _ in range(args.rounds):
        for name, path in sides:
            for case, us in run(path, args.n).items():
                best[name][case] = min(us, best[name].get(case, float("inf")))
    cases = list(best["this"])
    print(f"{'case':<20}" + "".join(f"{name:>10}" for name, _ in sides) + ("   this/base" if args.base else ""))
    for case in cases:
        row = f"{case:<20}" + "".join(f"{best[name][case]:>10.2f}" for name, _ in sides)
        if args.base:
            row += f"   {best['this'][case] / best['base'][case]:.2f}"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
