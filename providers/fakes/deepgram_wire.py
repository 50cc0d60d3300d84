"""Deepgram `/v1/listen` wire pieces for the fake server, with no I/O, client to server: query
parsing, credentials and audio decoding (docs/providers/deepgram.md §1-4). The server messages are in
deepgram_messages.py, the transcriber that produces them in deepgram_transcriber.py.

Invariant: every time value here is STREAM time (seconds of audio received, per channel), so the
same audio yields the same messages however fast it is sent.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

import numpy as np

from audio.g711 import alaw_decode, ulaw_decode

# docs/providers/deepgram.md §4: the one close reason confirmed verbatim (NET-0001, idle stream).
NET0001_REASON = (
    "Deepgram did not receive audio data or a text message within the timeout window. "
    "See https://dpgr.am/net0001"
)
# docs/providers/deepgram.md §4: DATA-0000 (close 1008); the exact wording is [unsure], the pattern is documented.
DATA0000_REASON = "Deepgram failed to process the audio: the payload could not be decoded. See https://dpgr.am/data0000"
INVALID_CREDENTIALS = "Invalid credentials."

# docs/providers/deepgram.md §1: encodings the real service knows; the fake decodes the raw telephony/PCM ones.
KNOWN_ENCODINGS = ("linear16", "linear32", "flac", "alaw", "mulaw", "amr-nb", "amr-wb", "opus", "ogg-opus",
                   "speex", "g729")
DECODED_ENCODINGS = ("linear16", "mulaw", "alaw")
MIN_SAMPLE_RATE_HZ = 4000
MAX_SAMPLE_RATE_HZ = 192000
MAX_CHANNELS = 16
MAX_WAV_HEADER_BYTES = 4096
MODEL_FAMILIES = ("nova-3", "nova-2", "nova", "enhanced", "base", "whisper")
_LANGUAGE = re.compile(r"^(multi|[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*)$")
_BOOLEANS = {"true": True, "false": False}


class ListenQueryError(ValueError):
    """A `/v1/listen` query the real service answers with HTTP 400 (message goes to `dg-error`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenParams:
    """The query parameters the fake honours. `endpointing_ms=None` means `endpointing=false`;
    `encoding=None` means containerised audio (the fake understands a PCM16 WAV header)."""

    model: str = "base"
    language: str = "en"
    encoding: str | None = None
    sample_rate_hz: int | None = None
    channels: int = 1
    multichannel: bool = False
    interim_results: bool = False
    endpointing_ms: int | None = 10  # docs/providers/deepgram.md §1: default 10 ms
    utterance_end_ms: int | None = None
    vad_events: bool = False
    punctuate: bool = False
    smart_format: bool = False
    keyterms: tuple[str, ...] = field(default=())


def _bool(query: dict[str, str], name: str) -> bool:
    raw = query.get(name)
    if raw is None:
        return False
    if raw not in _BOOLEANS:
        raise ListenQueryError(f"Invalid value for '{name}': expected true or false, got '{raw}'.")
    return _BOOLEANS[raw]


def _int(query: dict[str, str], name: str, low: int, high: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ListenQueryError(f"Invalid value for '{name}': expected an integer, got '{raw}'.") from None
    if not low <= value <= high:
        raise ListenQueryError(f"Invalid value for '{name}': {value} is outside {low}..{high}.")
    return value


def parse_listen_query(query: dict[str, str], keyterms: tuple[str, ...] = ()) -> ListenParams:
    """Validate the query like the real service: bad values → ListenQueryError (HTTP 400).

    Parameter names the fake does not know are ignored, as the real service appears to do
    (docs/providers/deepgram.md §1 lists many more; a misspelt name does not fail the upgrade there either)."""
    model = query.get("model", "base")
    if not any(model == fam or model.startswith(fam + "-") for fam in MODEL_FAMILIES):
        raise ListenQueryError(f"No such model/language/tier combination found: model '{model}'.")
    language = query.get("language", "en")
    if not _LANGUAGE.match(language):
        raise ListenQueryError(f"Invalid value for 'language': '{language}'.")
    encoding = query.get("encoding")
    sample_rate = None
    if encoding is not None:
        if encoding not in KNOWN_ENCODINGS:
            raise ListenQueryError(f"Invalid value for 'encoding': '{encoding}'.")
        if encoding not in DECODED_ENCODINGS:
            raise ListenQueryError(
                f"Unsupported encoding '{encoding}' (this simulator decodes {', '.join(DECODED_ENCODINGS)}).")
        if "sample_rate" not in query:
            raise ListenQueryError("Missing 'sample_rate': it is required when 'encoding' is set.")
        sample_rate = _int(query, "sample_rate", MIN_SAMPLE_RATE_HZ, MAX_SAMPLE_RATE_HZ)
    channels = _int(query, "channels", 1, MAX_CHANNELS) or 1
    interim = _bool(query, "interim_results")
    endpointing: int | None = 10
    raw_endpointing = query.get("endpointing")
    if raw_endpointing == "false":
        endpointing = None
    elif raw_endpointing not in (None, "true"):
        endpointing = _int(query, "endpointing", 0, 60_000)
    utterance_end = _int(query, "utterance_end_ms", 1, 60_000)
    if utterance_end is not None and not interim:
        # docs/providers/deepgram.md §1: UtteranceEnd requires interim_results=true; the fake is strict about it.
        raise ListenQueryError("'utterance_end_ms' requires 'interim_results=true'.")
    return ListenParams(
        model=model, language=language, encoding=encoding, sample_rate_hz=sample_rate, channels=channels,
        multichannel=_bool(query, "multichannel"), interim_results=interim, endpointing_ms=endpointing,
        utterance_end_ms=utterance_end, vad_events=_bool(query, "vad_events"),
        punctuate=_bool(query, "punctuate"), smart_format=_bool(query, "smart_format"), keyterms=keyterms,
    )


def credential_from(headers: dict[str, str], offered_subprotocols: list[str]) -> str | None:
    """The key or token a client presents (docs/providers/deepgram.md §1 Authentication), or None.

    `Authorization: Token <key>` / `Bearer <jwt>`, or `Sec-WebSocket-Protocol: token, <key>`
    (`bearer, <jwt>`). A bare `Authorization: <key>` without the scheme is rejected (401) like the
    real service does."""
    auth = headers.get("authorization", "").strip()
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    for marker in ("token", "bearer"):
        if marker in offered_subprotocols:
            rest = [p for p in offered_subprotocols if p != marker]
            if rest and rest[0]:
                return rest[0]
    return None


# -- audio decoding --------------------------------------------------------------------------
class ListenAudioDecoder:
    """Binary frames in the declared encoding → mono PCM16 at `sample_rate_hz`.

    Carries partial samples/frames across chunks (any chunk size is legal on the wire); several
    channels are averaged into one (the fake transcribes one mixed channel). With no `encoding` the
    first bytes must be a PCM16 WAV header (containerised audio, docs/providers/deepgram.md §1), otherwise the audio
    cannot be decoded and `feed` raises ValueError (the server closes 1008 DATA-0000)."""

    def __init__(self, params: ListenParams) -> None:
        self.encoding = params.encoding
        self.sample_rate_hz = params.sample_rate_hz or 16000
        self.channels = params.channels
        self._pending = b""
        self._header_done = params.encoding is not None

    @property
    def bytes_per_frame(self) -> int:
        return (2 if self.encoding in ("linear16", None) else 1) * self.channels

    def feed(self, data: bytes) -> bytes:
        data = self._pending + data
        if not self._header_done:
            header = _parse_wav_header(data)
            if header is None:  # not all of the header yet
                if len(data) > MAX_WAV_HEADER_BYTES:
                    raise ValueError("no WAV data chunk where one was expected")
                self._pending = data
                return b""
            self.sample_rate_hz, self.channels, offset = header
            self._header_done = True
            data = data[offset:]
        usable = len(data) - len(data) % self.bytes_per_frame
        self._pending, data = data[usable:], data[:usable]
        if self.encoding == "mulaw":
            pcm = ulaw_decode(data)
        elif self.encoding == "alaw":
            pcm = alaw_decode(data)
        else:
            pcm = data
        return _downmix(pcm, self.channels) if self.channels > 1 else pcm


def _downmix(pcm: bytes, channels: int) -> bytes:
    frames = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).astype(np.int32)
    return frames.mean(axis=1).astype("<i2").tobytes()


def _parse_wav_header(data: bytes) -> tuple[int, int, int] | None:
    """(sample_rate_hz, channels, data_offset) of a PCM16 RIFF/WAVE header; None while incomplete.
    ValueError: not a WAV file, or not PCM16."""
    if not b"RIFF".startswith(data[:4]) or not b"WAVE".startswith(data[8:12]):
        raise ValueError("audio is neither the declared encoding nor a WAV file")
    pos, rate, channels = 12, 0, 0
    while pos + 8 <= len(data):
        chunk_id, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk_id == b"fmt ":
            if pos + 24 > len(data):
                return None
            fmt_tag, channels, rate = struct.unpack_from("<HHI", data, pos + 8)
            bits = struct.unpack_from("<H", data, pos + 22)[0]
            if fmt_tag != 1 or bits != 16 or not channels or not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
                raise ValueError("only PCM16 WAV is understood without an explicit encoding")
        elif chunk_id == b"data":
            if not rate:
                raise ValueError("WAV data chunk before its fmt chunk")
            return rate, channels, pos + 8
        pos += 8 + size + (size & 1)
    return None


