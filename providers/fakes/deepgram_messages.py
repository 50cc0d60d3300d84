"""Deepgram `/v1/listen` server messages for the fake server, with no I/O: the model identity,
`Results` with words, `SpeechStarted`, `UtteranceEnd`, `Metadata` and the in-band `Error`
(docs/providers/deepgram.md §2.2, §3). Every time value is STREAM time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from providers.fakes.deepgram_wire import MODEL_FAMILIES

DTMF_CONFIDENCE = 0.99
SPEECH_CONFIDENCE = 0.5
SPEECH_WORD = "speech"  # what plain (non-DTMF) speech is transcribed as, so a person sees something


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
        arch = next(fam for fam in MODEL_FAMILIES if model == fam or model.startswith(fam + "-"))
        domain = model[len(arch) + 1:] or "general"
        return cls(name=f"{domain}-{arch}", version="2025-01-01.0", arch=arch,
                   uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-deepgram/{model}")))

    def as_wire(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "arch": self.arch}


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

