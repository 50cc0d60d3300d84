"""The layer the telephony serializers share: typed inbound events, the stream state machine,
exact-size outbound framing and playout tracking. Sans-I/O: frames in, events and frames out.

Error policy (docs/telephony.md §1 "Failure behaviour"): the vendors define no error channel on the
media socket, so `parse` raises `BadMessage`/`BadAudio` for malformed or out-of-order input and the
endpoint logs it, counts it and carries on with the next frame; nothing else ever escapes `parse`.
Unknown event names are ignored (vendors add events), as are media frames of tracks we did not ask
for. A frame is `str` (text) or `bytes` (binary), as in providers/base.py.
"""

from __future__ import annotations

import binascii
import itertools
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
import pybase64

from audio.formats import AudioFormat
from audio.frames import SILENCE_BYTE, FrameChunker  # noqa: F401  (SILENCE_BYTE: re-exported)
from gateway.errors import BadAudio, BadMessage

Frame = str | bytes

DTMF_DIGITS = frozenset("0123456789*#ABCD")
# Parameters a call may set through the vendor's custom parameters (docs/protocol.md, /v1/twilio).
CALL_OPTIONS = ("provider", "fallback", "instructions", "voice", "language")
# docs/audio.md: the byte that decodes to zero in each encoding, used to pad a last partial frame.


# == inbound events ================================================================================
@dataclass(frozen=True, slots=True)
class Connected:
    """The vendor opened the media socket (Twilio/Telnyx `connected`, Vonage `websocket:connected`)."""


@dataclass(frozen=True, slots=True)
class CallStarted:
    stream_id: str
    call_id: str
    params: dict[str, str]  # custom parameters / NCCO headers, all strings
    input_format: AudioFormat  # caller audio as MediaReceived carries it
    output_format: AudioFormat  # what media_frames() expects


@dataclass(frozen=True, slots=True)
class MediaReceived:
    data: bytes  # caller audio, raw in `fmt` (μ-law for Twilio; PCM16 little-endian for L16)
    fmt: AudioFormat


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    digit: str


@dataclass(frozen=True, slots=True)
class MarkPlayed:
    """All audio sent before the mark has played, or a `clear` dropped it (see PlayoutTracker)."""

    name: str


@dataclass(frozen=True, slots=True)
class Cleared:
    """The vendor confirmed a clear (Vonage `websocket:cleared`)."""


@dataclass(frozen=True, slots=True)
class CallStopped:
    """The stream ended (Twilio/Telnyx `stop`; Vonage has none: its socket just closes)."""


@dataclass(frozen=True, slots=True)
class TelephonyError:
    """The vendor reported an error on the media socket (Telnyx `error`), e.g. about a frame we sent."""

    reason: str


TelephonyEvent = Connected | CallStarted | MediaReceived | DtmfReceived | MarkPlayed | Cleared | CallStopped | TelephonyError


# == parsing helpers ===============================================================================
def load_json_object(frame: Frame) -> dict[str, Any]:
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise BadMessage("frame is not valid JSON") from None
    if not isinstance(msg, dict):
        raise BadMessage("frame is not a JSON object")
    return msg


def get_object(msg: dict[str, Any], key: str) -> dict[str, Any]:
    value = msg.get(key)
    if not isinstance(value, dict):
        raise BadMessage(f"`{key}` must be an object")
    return value


def get_str(msg: dict[str, Any], key: str, *, default: str | None = None) -> str:
    value = msg.get(key, default)
    if not isinstance(value, str):
        raise BadMessage(f"`{key}` must be a string")
    return value


def decode_base64(text: object) -> bytes:
    if not isinstance(text, str):
        raise BadAudio("media payload must be a base64 string")
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadAudio("media payload is not valid base64") from None


def string_params(raw: object, *, what: str) -> dict[str, str]:
    """A flat {name: value} object; scalar values become strings, nested ones are refused."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadMessage(f"{what} must be an object")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            out[key] = str(value)
        else:
            raise BadMessage(f"{what} values must be strings")
    return out


def check_digits(digits: str) -> list[DtmfReceived]:
    if not digits or any(d not in DTMF_DIGITS for d in digits):
        raise BadMessage("DTMF digit must be one of 0-9 * # A-D")
    return [DtmfReceived(d) for d in digits]


def swap_bytes16(data: bytes) -> bytes:
    """Big-endian ↔ little-endian 16-bit samples (RTP L16 is network byte order, RFC 3551 §4.5.11)."""
    out = bytearray(len(data))
    out[0::2] = data[1::2]
    out[1::2] = data[0::2]
    return bytes(out)


# == outbound framing ==============================================================================
# == the serializer contract =======================================================================
class StreamState(Enum):
    AWAITING_START = "awaiting_start"
    STREAMING = "streaming"
    STOPPED = "stopped"


# enum members as module constants: on Python 3.11 `Enum.MEMBER` is a ~0.13 µs lookup, and these
# are read per frame
_STREAMING, _STOPPED = StreamState.STREAMING, StreamState.STOPPED


class MediaStreamSerializer(ABC):
    """One vendor media socket, seen from the server side. One instance per connection.

    Inbound: `parse(frame)` → list of TelephonyEvent (raises BadMessage/BadAudio, never anything
    else). Outbound: `media_frames(audio)` (audio in `output_format`, cut into exact 20 ms frames,
    a partial tail carried over), `flush_media()` (the tail, padded with silence, at the end of a
    reply), `mark(name)` (covers audio handed to media_frames before it, less any unflushed tail
    under 20 ms), `clear()` (barge-in; also drops the unsent tail).
    """

    vendor: str = ""
    frame_ms = 20

    def __init__(self) -> None:
        self.state = StreamState.AWAITING_START
        self.stream_id = ""
        self.call_id = ""
        self.input_format: AudioFormat | None = None
        self.output_format: AudioFormat | None = None
        self._chunker: FrameChunker | None = None

    # -- inbound --
    def parse(self, frame: Frame) -> list[TelephonyEvent]:
        if self.state is _STOPPED:
            raise BadMessage("message after the stream stopped")
        return self._parse(frame)

    def media_audio(self, frame: Frame) -> bytes | None:
        """The caller audio of an ordinary inbound media message (50 a second) on a short path, the
        same bytes `parse` would put in its MediaReceived (b"" for an empty payload), or the same
        BadAudio for a payload the vendor's format cannot hold; None for any other frame, malformed
        ones included: `parse` then handles it, errors and all."""
        return None

    @abstractmethod
    def _parse(self, frame: Frame) -> list[TelephonyEvent]: ...

    def _require_streaming(self, what: str) -> None:
        if self.state is not _STREAMING:
            raise BadMessage(f"`{what}` before the stream started")

    def _started(self, *, stream_id: str, call_id: str, params: dict[str, str],
                 input_format: AudioFormat, output_format: AudioFormat) -> CallStarted:
        if self.state is not StreamState.AWAITING_START:
            raise BadMessage("the stream was already started")
        self.state = StreamState.STREAMING
        self.stream_id, self.call_id = stream_id, call_id
        self.input_format, self.output_format = input_format, output_format
        self._chunker = FrameChunker(output_format, self.frame_ms)
        return CallStarted(stream_id, call_id, params, input_format, output_format)

    def _stopped(self) -> list[TelephonyEvent]:
        self.state = StreamState.STOPPED
        return [CallStopped()]

    # -- outbound --
    def media_frames(self, audio: bytes) -> list[Frame]:
        return [self._media_message(f) for f in self._outbound_chunker().push(audio)]

    def flush_media(self) -> list[Frame]:
        return [self._media_message(f) for f in self._outbound_chunker().flush()]

    def clear(self) -> Frame:
        self._outbound_chunker().drop()
        return self._clear_message()

    @abstractmethod
    def mark(self, name: str) -> Frame: ...

    @abstractmethod
    def _media_message(self, frame: bytes) -> Frame: ...

    @abstractmethod
    def _clear_message(self) -> Frame: ...

    def _outbound_chunker(self) -> FrameChunker:
        if self._chunker is None:
            raise RuntimeError("no outbound audio before the call started")  # a gateway bug, not input
        return self._chunker


class JsonMediaStream(MediaStreamSerializer):
    """Twilio and Telnyx: the same JSON event set (docs/telephony.md §1-§2), camelCase vs snake_case.

    Subclasses name the stream-id key, read `start`, and shape outbound messages (`_envelope`).
    """

    stream_id_key = ""
    inbound_tracks = frozenset({"inbound", "inbound_track"})

    def __init__(self) -> None:
        super().__init__()
        # the vendor's names, as the instance's own: every media message reads them, and Python 3.11
        # does not specialise reading a class attribute through an instance
        self.stream_id_key = type(self).stream_id_key
        self.inbound_tracks = type(self).inbound_tracks

    def _parse(self, frame: Frame) -> list[TelephonyEvent]:
        if not isinstance(frame, str):
            raise BadMessage(f"{self.vendor} media streams send text frames only")
        msg = load_json_object(frame)
        event = msg.get("event")
        if not isinstance(event, str):
            raise BadMessage("`event` must be a string")
        return self._on_event(event, msg)

    def media_audio(self, frame: Frame) -> bytes | None:
        if self.state is not _STREAMING or type(frame) is not str:
            return None
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return None
        if type(msg) is not dict or msg.get("event") != "media":
            return None
        media, sid = msg.get("media"), msg.get(self.stream_id_key)
        if type(media) is not dict or (sid is not None and sid != self.stream_id):
            return None
        payload, track = media.get("payload"), media.get("track", "inbound")
        if type(payload) is not str or type(track) is not str or track not in self.inbound_tracks:
            return None  # (a list as the track would make the set lookup raise: the general parser says why)
        try:
            return self._inbound_audio(pybase64.b64decode(payload, validate=True))
        except (binascii.Error, ValueError):
            return None

    def _on_event(self, event: str, msg: dict[str, Any]) -> list[TelephonyEvent]:
        match event:  # media first: 50 a second, everything else a few per call
            case "media":
                self._require_streaming(event)
                self._check_stream_id(msg)
                return self._on_media(get_object(msg, "media"))
            case "connected":
                if self.state is not StreamState.AWAITING_START:
                    raise BadMessage("`connected` after the stream started")
                return [Connected()]
            case "start":
                return [self._on_start(msg)]
            case "dtmf":
                self._require_streaming(event)
                self._check_stream_id(msg)
                return list(check_digits(get_str(get_object(msg, "dtmf"), "digit")))
            case "mark":
                self._require_streaming(event)
                self._check_stream_id(msg)
                return [MarkPlayed(get_str(get_object(msg, "mark"), "name"))]
            case "stop":
                if self.state is StreamState.STREAMING:
                    self._check_stream_id(msg)
                return self._stopped()
            case _:
                return []  # events added by the vendor later

    @abstractmethod
    def _on_start(self, msg: dict[str, Any]) -> CallStarted: ...

    def _check_stream_id(self, msg: dict[str, Any]) -> None:
        value = msg.get(self.stream_id_key)
        if value is None:
            return
        if value != self.stream_id:
            raise BadMessage(f"`{self.stream_id_key}` does not match the started stream")

    def _on_media(self, media: dict[str, Any]) -> list[TelephonyEvent]:
        track = media.get("track", "inbound")
        if not isinstance(track, str):
            raise BadMessage("`track` must be a string")
        if track not in self.inbound_tracks:
            return []  # the outbound track of a both_tracks fork is our own audio
        data = self._inbound_audio(decode_base64(media.get("payload")))
        assert self.input_format is not None
        return [MediaReceived(data, self.input_format)] if data else []

    def _inbound_audio(self, payload: bytes) -> bytes:
        return payload

    def _media_message(self, frame: bytes) -> Frame:
        return self._envelope({"event": "media", "media": {"payload": pybase64.b64encode_as_string(frame)}})

    def _clear_message(self) -> Frame:
        return self._envelope({"event": "clear"})

    def mark(self, name: str) -> Frame:
        return self._envelope({"event": "mark", "mark": {"name": name}})

    @abstractmethod
    def _envelope(self, message: dict[str, Any]) -> str: ...


# == playout =======================================================================================
class PlayoutTracker:
    """How much of each reply the caller has actually heard, from marks coming back.

    The bridge reports reply audio as it hands it to `media_frames` (`sent`), asks for a mark
    name after each batch (`new_mark`, then sends `serializer.mark(name)`), and feeds every
    MarkPlayed to `played`. Marks come back in order once the audio before them has played. A
    `clear` makes the vendor return the pending marks at once (docs/telephony.md §1), so after
    `cleared()` those marks count for nothing (a mark already in flight when we cleared counts for
    nothing too). `heard_ms(item_id)` is therefore a lower bound, exact to within one mark interval
    plus the network delay: send a mark every 100-200 ms of reply audio for a tight bound.
    """

    def __init__(self, fmt: AudioFormat, *, prefix: str = "vg") -> None:
        self._fmt = fmt
        self._prefix = prefix
        self._seq = itertools.count(1)
        self._sent: dict[str, int] = {}
        self._played: dict[str, int] = {}
        self._pending: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._discarded: set[str] = set()
        self._current: str | None = None

    def sent(self, item_id: str, n_bytes: int) -> None:
        self._current = item_id
        self._sent[item_id] = self._sent.get(item_id, 0) + n_bytes

    def new_mark(self) -> str:
        name = f"{self._prefix}-{next(self._seq)}"
        item_id = self._current or ""
        self._pending[name] = (item_id, self._sent.get(item_id, 0))
        return name

    def played(self, name: str) -> bool:
        """Record a returned mark; False when it was unknown or dropped by a clear."""
        if name in self._discarded:
            self._discarded.discard(name)
            return False
        if name not in self._pending:
            return False
        while self._pending:  # marks play in order: every earlier one has played too
            mark, (item_id, position) = self._pending.popitem(last=False)
            if item_id:
                self._played[item_id] = max(self._played.get(item_id, 0), position)
            if mark == name:
                break
        return True

    def cleared(self) -> None:
        self._discarded.update(self._pending)
        self._pending.clear()
        self._current = None

    def heard_ms(self, item_id: str) -> int:
        return self._played.get(item_id, 0) * 1000 // self._fmt.bytes_per_second

    def sent_ms(self, item_id: str) -> int:
        return self._sent.get(item_id, 0) * 1000 // self._fmt.bytes_per_second

    @property
    def pending_marks(self) -> int:
        return len(self._pending)

    def forget(self, item_id: str) -> None:
        """Drop a finished reply's counters (a long call has many)."""
        self._sent.pop(item_id, None)
        self._played.pop(item_id, None)
