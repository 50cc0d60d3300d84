"""Deepgram `/v1/listen` wire pieces for the fake server, with no I/O: query parsing, credentials,
audio decoding and the server messages (docs/providers/deepgram.md §1-4).

Invariant: every time value here is STREAM time (seconds of audio received, per channel), so the
same audio yields the same messages however fast it is sent.
"""

from __future__ import annotations

import re
import struct
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from audio.g711 import alaw_decode, ulaw_decode
from providers.fakes.common import DialectRecognizer, PartialWords, SpeechStart, Utterance

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
_MODEL_FAMILIES = ("nova-3", "nova-2", "nova", "enhanced", "base", "whisper")
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
    if not any(model == fam or model.startswith(fam + "-") for fam in _MODEL_FAMILIES):
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


# -- model identity --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    version: str
    arch: str
    uuid: str

    @classmethod
    def for_model(cls, model: str) -> ModelInfo:
        """`nova-2-phonecall` → name `phonecall-nova-2`, arch `nova-2` (the real naming scheme);
        the uuid is stable per model name so every connection reports the same one."""
        arch = next(fam for fam in _MODEL_FAMILIES if model == fam or model.startswith(fam + "-"))
        domain = model[len(arch) + 1:] or "general"
        return cls(name=f"{domain}-{arch}", version="2025-01-01.0", arch=arch,
                   uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-deepgram/{model}")))

    def as_wire(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "arch": self.arch}


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


# -- server messages (docs/providers/deepgram.md §2.2, §3) ---------------------------------------------------
def _t(seconds: float) -> float:
    """Times on the wire are rounded to the millisecond, like the real service's."""
    return round(seconds, 3)


def word(text: str, start_s: float, end_s: float, confidence: float, *, punctuate: bool) -> dict[str, Any]:
    shown = text.capitalize() if punctuate and text.isalpha() else text
    return {"word": text, "start": _t(start_s), "end": _t(end_s), "confidence": confidence,
            "punctuated_word": shown}


def results_message(*, start_s: float, end_s: float, transcript: str, words: list[dict[str, Any]],
                    confidence: float, is_final: bool, speech_final: bool, from_finalize: bool,
                    channel_index: list[int], request_id: str, model: ModelInfo) -> dict[str, Any]:
    """`start`/`duration` describe the window; start+duration is the point the audio is
    acknowledged up to (the gateway trims its replay buffer there)."""
    start = _t(start_s)
    return {
        "type": "Results", "channel_index": channel_index, "start": start,
        "duration": _t(max(0.0, _t(end_s) - start)), "is_final": is_final, "speech_final": speech_final,
        "from_finalize": from_finalize,
        "channel": {"alternatives": [{"transcript": transcript, "confidence": confidence, "words": words}]},
        "metadata": {"request_id": request_id, "model_info": model.as_wire(), "model_uuid": model.uuid},
    }


def speech_started_message(at_s: float, channel_index: list[int]) -> dict[str, Any]:
    return {"type": "SpeechStarted", "channel": channel_index, "timestamp": _t(at_s)}


def utterance_end_message(last_word_end_s: float, channel_index: list[int]) -> dict[str, Any]:
    return {"type": "UtteranceEnd", "channel": channel_index, "last_word_end": _t(last_word_end_s)}


def metadata_message(*, request_id: str, duration_s: float, channels: int, model: ModelInfo | None,
                     created: datetime | None = None) -> dict[str, Any]:
    """Session summary; `models`/`model_info` only when audio was processed (docs/providers/deepgram.md §2.2)."""
    created = created or datetime.now(UTC)
    msg: dict[str, Any] = {
        "type": "Metadata", "transaction_key": "deprecated", "request_id": request_id, "sha256": "incomplete",
        "created": created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond // 1000:03d}Z",
        "duration": _t(duration_s), "channels": channels,
    }
    if model is not None:
        msg["models"] = [model.uuid]
        msg["model_info"] = {model.uuid: model.as_wire()}
    return msg


def with_words(message: dict[str, Any], text: str, *, punctuate: bool) -> dict[str, Any]:
    """A final `Results` for plain speech with the recognised `text` in place of the word "speech"; the
    words share the utterance's time span evenly."""
    alternative = message["channel"]["alternatives"][0]
    span = alternative["words"][0] if alternative["words"] else {"start": message["start"], "end": message["start"]}
    tokens = text.split()
    step = (span["end"] - span["start"]) / max(1, len(tokens))
    alternative["words"] = [word(t, span["start"] + i * step, span["start"] + (i + 1) * step, SPEECH_CONFIDENCE,
                                 punctuate=punctuate) for i, t in enumerate(tokens)]
    alternative["transcript"] = " ".join(tokens)
    return message


def schema_error_message(original: str, description: str) -> dict[str, Any]:
    """docs/providers/deepgram.md §2.2: an unparseable client text message → in-band `Error` (SchemaError)."""
    return {"type": "Error", "variant": "SchemaError", "description": description, "message": original}


# -- the DTMF-dialect transcriber ---------------------------------------------------------------
DTMF_CONFIDENCE = 0.99
SPEECH_CONFIDENCE = 0.5
SPEECH_WORD = "speech"  # what plain (non-DTMF) speech is transcribed as, so a person sees something
MIN_PAUSE_MS = 300  # > the 100 ms gap between DTMF digits, so a digit string stays one word
SILENCE_GUARD_S = 0.25  # never acknowledge the newest audio in silence: speech may be starting there


class ListenTranscriber:
    """Decoded audio and control messages in, Deepgram server messages (dicts) out.

    - A final `Results` closes a window: each window starts where the previous one ended, so
      start+duration of every final is how far the audio is acknowledged.
    - Endpointing: an utterance ends after max(endpointing, MIN_PAUSE_MS) of silence (the dialect
      needs pauses longer than the inter-digit gap); it gives `speech_final:true` unless
      `endpointing=false`. DTMF digits are one word ("1234#"); plain speech is the word "speech".
    - In silence, an empty final every `silence_final_every_s` acknowledges the audio the way the
      real service's periodic empty results do (None: never)."""

    def __init__(self, params: ListenParams, *, request_id: str, silence_final_every_s: float | None = 2.0) -> None:
        self.params = params
        self.request_id = request_id
        self.model = ModelInfo.for_model(params.model)
        self.decoder = ListenAudioDecoder(params)
        self.channel_index = [0, params.channels if params.multichannel else 1]
        self.silence_final_every_s = silence_final_every_s
        self.end_silence_ms = max(params.endpointing_ms or 0, MIN_PAUSE_MS)
        self._recognizer: DialectRecognizer | None = None
        self._samples = 0
        self._window_start_s = 0.0
        self._in_speech = False
        self._last_word_end_s: float | None = None  # waiting for its UtteranceEnd
        # audio of each plain-speech final not yet sent, in order (for a fake with a speech engine)
        self.speech_audio: deque[bytes] = deque()

    @property
    def stream_time_s(self) -> float:
        return self._samples / self.decoder.sample_rate_hz

    def feed_audio(self, data: bytes) -> tuple[bytes, list[dict[str, Any]]]:
        """One binary frame → (the PCM16 it decoded to, messages to send). ValueError: undecodable."""
        pcm = self.decoder.feed(data)
        if not pcm:
            return pcm, []
        if self._recognizer is None:
            self._recognizer = DialectRecognizer(self.decoder.sample_rate_hz, end_silence_ms=self.end_silence_ms)
        self._samples += len(pcm) // 2
        out = self._handle(self._recognizer.feed(pcm), reason="endpoint")
        out += self._utterance_end_due(self.stream_time_s)
        out += self._silence_final()
        return pcm, out

    def finalize(self) -> list[dict[str, Any]]:
        """`Finalize`: settle everything received so far; always at least one `from_finalize` final."""
        events = self._recognizer.flush() if self._recognizer else []
        out = self._handle(events, reason="finalize")
        if not any(m["type"] == "Results" and m["is_final"] for m in out):
            out.append(self._final_window("", [], 0.0, self.stream_time_s, reason="finalize"))
        return out + self._utterance_end_due(self.stream_time_s)

    def close_stream(self) -> list[dict[str, Any]]:
        """`CloseStream` (or an empty binary frame): the last final, if any, then `Metadata`."""
        events = self._recognizer.flush() if self._recognizer else []
        return self._handle(events, reason="close") + [self.metadata()]

    def metadata(self) -> dict[str, Any]:
        # Real captures of streams that never processed audio show `"channels": 0` and no models.
        processed = self._samples > 0
        return metadata_message(request_id=self.request_id, duration_s=self.stream_time_s,
                                channels=self.params.channels if processed else 0,
                                model=self.model if processed else None)

    # -- internals --------------------------------------------------------------------------------
    def _handle(self, events: list[SpeechStart | PartialWords | Utterance], *, reason: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in events:
            match event:
                case SpeechStart(at_s=at_s):
                    out += self._utterance_end_due(at_s)
                    self._last_word_end_s = None  # speech resumed before the utterance_end gap
                    self._in_speech = True
                    if self.params.vad_events:
                        out.append(speech_started_message(at_s, self.channel_index))
                case PartialWords(text=text, start_s=start_s, end_s=end_s) if self.params.interim_results:
                    words = [word(text, start_s, end_s, DTMF_CONFIDENCE, punctuate=self._punctuate)]
                    out.append(results_message(
                        start_s=self._window_start_s, end_s=end_s, transcript=text, words=words,
                        confidence=DTMF_CONFIDENCE, is_final=False, speech_final=False, from_finalize=False,
                        channel_index=self.channel_index, request_id=self.request_id, model=self.model))
                case Utterance() as utt:
                    text = utt.text if utt.is_dtmf and utt.text else SPEECH_WORD
                    confidence = DTMF_CONFIDENCE if utt.is_dtmf else SPEECH_CONFIDENCE
                    words = [word(text, utt.start_s, utt.end_s, confidence, punctuate=self._punctuate)]
                    end_s = self.stream_time_s
                    if reason == "endpoint":  # the window ends where the pause was long enough
                        end_s = min(end_s, utt.end_s + self.end_silence_ms / 1000)
                    out.append(self._final_window(text, words, confidence, end_s, reason=reason))
                    if not utt.is_dtmf:
                        self.speech_audio.append(utt.audio)
                    self._in_speech = False
                    if self.params.utterance_end_ms is not None:
                        self._last_word_end_s = utt.end_s
        return out

    @property
    def _punctuate(self) -> bool:
        return self.params.punctuate or self.params.smart_format

    def _final_window(self, text: str, words: list[dict[str, Any]], confidence: float, end_s: float, *,
                      reason: str) -> dict[str, Any]:
        end_s = max(end_s, self._window_start_s)
        msg = results_message(
            start_s=self._window_start_s, end_s=end_s, transcript=text, words=words, confidence=confidence,
            is_final=True, speech_final=bool(text) and reason == "endpoint" and self.params.endpointing_ms is not None,
            from_finalize=reason == "finalize", channel_index=self.channel_index, request_id=self.request_id,
            model=self.model)
        self._window_start_s = msg["start"] + msg["duration"]
        return msg

    def _utterance_end_due(self, now_s: float) -> list[dict[str, Any]]:
        ue_ms = self.params.utterance_end_ms
        if self._last_word_end_s is None or ue_ms is None or now_s < self._last_word_end_s + ue_ms / 1000:
            return []
        last, self._last_word_end_s = self._last_word_end_s, None
        return [utterance_end_message(last, self.channel_index)]

    def _silence_final(self) -> list[dict[str, Any]]:
        every = self.silence_final_every_s
        settled_s = self.stream_time_s - SILENCE_GUARD_S
        if self._in_speech or every is None or settled_s - self._window_start_s < every:
            return []
        return [self._final_window("", [], 0.0, settled_s, reason="silence")]
