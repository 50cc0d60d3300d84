"""The transcription chain: options, result, audio sniffing and the chain spec (Deepgram → Groq → OpenAI).

Pure functions and data. `sniff_audio` recognises the container from its magic bytes so an empty or
undecodable upload is refused (400, a stable code) before any provider is contacted or billed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import BadAudio
from providers.chains.base import ErrorClass, Usage
from providers.chains.spec import ChainCodes, ChainSpec

QUALITIES = ("standard", "high")
MAX_LANGUAGE_CHARS = 16


@dataclass(frozen=True, slots=True)
class AudioKind:
    extension: str  # what the multipart filename ends with (Groq/OpenAI infer the format from it)
    mime: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionOptions:
    audio: bytes = field(repr=False)
    kind: AudioKind
    language: str = "en"
    punctuate: bool = True
    diarize: bool = False
    quality: str = "standard"

    @property
    def filename(self) -> str:
        return f"audio.{self.kind.extension}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionResult:
    text: str
    model: str
    duration_s: float | None = None  # seconds of audio, as the provider measured them
    language: str | None = None
    words: list[dict[str, Any]] | None = None
    segments: list[dict[str, Any]] | None = None
    usage: Usage = Usage()


def sniff_audio(data: bytes) -> AudioKind:
    """The container of `data`, from its first bytes; BadAudio (`empty_audio`/`undecodable_audio`)."""
    if not data:
        raise BadAudio("the request carried no audio", code="empty_audio")
    head = data[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return AudioKind("wav", "audio/wav")
    if head[:4] == b"fLaC":
        return AudioKind("flac", "audio/flac")
    if head[:4] == b"OggS":
        return AudioKind("ogg", "audio/ogg")
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return AudioKind("mp3", "audio/mpeg")
    if head[:4] == b"\x1aE\xdf\xa3":
        return AudioKind("webm", "audio/webm")
    if head[4:8] == b"ftyp":
        return AudioKind("m4a", "audio/mp4")
    raise BadAudio("the audio is not in a format we recognise (wav, flac, ogg, mp3, webm, m4a)",
                   code="undecodable_audio")


def wav_duration_s(data: bytes) -> float | None:
    """Seconds of audio in a RIFF/WAVE file (any sample format), None if the header is unusual."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"fmt " and pos + 16 <= len(data):
            byte_rate = struct.unpack_from("<I", data, pos + 16)[0]
        elif chunk == b"data":
            available = min(size, len(data) - pos - 8)
            return available / byte_rate if byte_rate else None
        pos += 8 + size + (size & 1)
    return None


def validate_options(options: TranscriptionOptions) -> None:
    if options.quality not in QUALITIES:
        raise BadAudio(f"quality must be one of {', '.join(QUALITIES)}", code="bad_option")
    lang = options.language
    if not lang or len(lang) > MAX_LANGUAGE_CHARS or not all(c.isalnum() or c == "-" for c in lang):
        raise BadAudio("language must be a BCP-47 tag such as en or pt-BR", code="bad_option")
    sniff_audio(options.audio)


TRANSCRIPTION = ChainSpec(
    name="transcription",
    endpoint="transcription",
    order=("deepgram", "groq", "openai"),
    codes=ChainCodes(
        all_failed="TRX-003",
        by_provider={("deepgram", ErrorClass.RATE_LIMIT): "TRX-001", ("deepgram", None): "TRX-002"},
    ),
    validate=validate_options,
)
