"""The telephony sink in virtual time (gateway/clients/telephony.py TelephonySink on the injected
clock): reply audio leaves as 20 ms frames no faster than real time after a 100 ms lead, marks go
out in order behind the audio they follow, and a barge-in clears the vendor, drops what is queued
and reports what the caller heard from the marks that came back."""

from __future__ import annotations

import base64

import orjson

from gateway.clients.telephony import FRAME_S, LEAD_S, TelephonySink
from gateway.clock import VirtualClock
from gateway.sink import Heard
from gateway.telephony import CallStarted, serializer_for

SID = "MZ0123456789abcdef0123456789abcdef"
START = orjson.dumps({"event": "start", "sequenceNumber": "1", "streamSid": SID, "start": {
    "streamSid": SID, "accountSid": "AC0", "callSid": "CA0", "tracks": ["inbound"], "customParameters": {},
    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}).decode()


class VendorSocket:
    """The vendor's end of the media WebSocket: what it received, and when (virtual time)."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.received: list[tuple[float, dict]] = []

    async def send_str(self, text: str) -> None:  # what aiohttp's WebSocketResponse offers the sink
        self.received.append((round(self.clock.now() - 1000.0, 6), orjson.loads(text)))

    async def send_frame(self, data: bytes, opcode: int) -> None:  # aiohttp's, for a frame as bytes
        self.received.append((round(self.clock.now() - 1000.0, 6), orjson.loads(data)))

    def media_times(self) -> list[float]:
        return [t for t, m in self.received if m["event"] == "media"]

    def events(self) -> list[str]:
        return [m["event"] for _, m in self.received]

    def marks(self) -> list[str]:
        return [m["mark"]["name"] for _, m in self.received if m["event"] == "mark"]


def started_sink() -> tuple[TelephonySink, VendorSocket, VirtualClock]:
    clock = VirtualClock(start=1000.0)
    ser = serializer_for("twilio")
    assert any(isinstance(ev, CallStarted) for ev in ser.parse(START))
    ws = VendorSocket(clock)
    sink = TelephonySink(ws, ser, "twilio", clock)  # type: ignore[arg-type]
    sink.started()
    return sink, ws, clock


async def run_for(clock: VirtualClock, seconds: float) -> None:
    """Let virtual time pass, waking each sleeper at its deadline."""
    end = clock.now() + seconds
    await clock.settle()
    while (nxt := clock.next_deadline()) is not None and nxt <= end + 1e-9:
        clock.advance(nxt - clock.now())
        await clock.settle()
    clock.advance(max(0.0, end - clock.now()))
    await clock.settle()


async def test_a_burst_is_paced_at_real_time_after_the_lead() -> None:
    sink, ws, clock = started_sink()
    await sink.send_audio(b"\xff" * 8000, "item-1")  # one second of μ-law in one burst
    await clock.settle()
    lead_frames = round(LEAD_S / FRAME_S) + 1
    assert len(ws.media_times()) == lead_frames  # the lead goes at once: 0, 20, ..., 100 ms ahead
    await run_for(clock, 2.0)
    times = ws.media_times()
    assert len(times) == 50
    assert all(len(base64.b64decode(m["media"]["payload"])) == 160 for _, m in ws.received if m["event"] == "media")
    # frame k leaves when real time has caught up to within the lead of its place in the stream
    assert times == [round(max(0.0, (k - lead_frames + 1) * FRAME_S), 6) for k in range(50)]
    assert all(k * FRAME_S - t <= LEAD_S + 1e-9 for k, t in enumerate(times))
    # the mark follows the audio it marks, in order
    assert ws.events()[-1] == "mark" and ws.received[-1][0] == times[-1]
    await sink.close()


async def test_marks_every_100_ms_and_a_barge_in_reports_what_was_heard() -> None:
    sink, ws, clock = started_sink()
    for _ in range(25):  # a provider's reply: 500 ms in 20 ms chunks, as fast as it can
        await sink.send_audio(b"\xd5" * 160, "item-7")
    await run_for(clock, 0.3)
    marks = ws.marks()
    # one per 100 ms of audio, sent up to the lead ahead: 400 ms of audio (4 marks) is out by 300 ms,
    # the rest is still queued behind the pacing
    assert len(marks) == 4 and len(ws.media_times()) == 21
    # the vendor plays in real time from t=0: by 300 ms it has played the first three marks
    for name in marks[:3]:
        assert sink.tracker is not None and sink.tracker.played(name)
    sent_before = len(ws.media_times())
    heard = await sink.flush_audio()
    assert heard == Heard("item-7", 300, 500) and heard.cut_short
    assert ws.events()[-1] == "clear"
    await run_for(clock, 1.0)  # what was queued is gone: nothing more reaches the vendor
    assert len(ws.media_times()) == sent_before and ws.events()[-1] == "clear"
    await sink.close()


async def test_turn_completed_flushes_the_partial_frame_then_marks() -> None:
    sink, ws, clock = started_sink()
    await sink.send_audio(b"\xff" * 100, "item-2")  # less than one 20 ms frame: held back
    await clock.settle()
    assert ws.media_times() == []
    await sink.turn_completed()
    await run_for(clock, 0.1)
    assert ws.events() == ["media", "mark"]
    payload = base64.b64decode(ws.received[0][1]["media"]["payload"])
    assert payload == b"\xff" * 100 + b"\xff" * 60  # padded with μ-law silence to 160 bytes
    await sink.close()
