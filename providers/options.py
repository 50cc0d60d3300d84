"""`provider_options`: per-provider settings a client passes in `session.start`, as data.

Each provider has one table: option name → (check, where it goes on the wire). Sans-I/O: the
adapters call `gemini_setup()`, `openai_session()` and `deepgram_query()` while building their
setup; the client edge calls `split()` once at session start so a bad value is a `bad_message`
and an unknown name a `warning` event (never silently dropped). `model` is read by the adapters
themselves (it chooses the URL or the setup's model field).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import BadMessage


@dataclass(frozen=True, slots=True)
class Option:
    check: Callable[[Any], bool]
    expected: str  # for the error message


def _bool() -> Option:
    return Option(lambda v: isinstance(v, bool), "true or false")


def _int(lo: int = 0, hi: int = 10**9) -> Option:
    return Option(lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi,
                  f"an integer {lo}..{hi}")


def _num(lo: float, hi: float) -> Option:
    return Option(lambda v: isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi,
                  f"a number {lo}..{hi}")


def _one_of(*values: str | None) -> Option:
    return Option(lambda v: v in values, "one of " + ", ".join(str(v) for v in values))


def _str(max_len: int = 200) -> Option:
    return Option(lambda v: isinstance(v, str) and 0 < len(v) <= max_len, "a non-empty string")


def _strs(max_items: int = 100) -> Option:
    def ok(v: Any) -> bool:
        items = [v] if isinstance(v, str) else v
        return isinstance(items, list) and 0 < len(items) <= max_items and \
            all(isinstance(s, str) and 0 < len(s) <= 200 for s in items)
    return Option(ok, f"a string or a list of up to {max_items} strings")


def _eagerness_or_bool() -> Option:
    return Option(lambda v: isinstance(v, bool) or v in ("low", "medium", "high", "auto"),
                  "true, false or an eagerness (low, medium, high, auto)")


_MODEL = _str()
GEMINI: dict[str, Option] = {
    "model": _MODEL,
    "voice": _str(60),  # overrides the call-wide voice on this provider (kept across a switch)
    "instructions": _str(8000),  # overrides the call-wide instructions on this provider
    "proactive_audio": _bool(),  # setup.proactivity.proactiveAudio (native audio models)
    "thinking_budget": _int(-1, 32768),  # generationConfig.thinkingConfig.thinkingBudget (-1: dynamic)
    "include_thoughts": _bool(),
    "affective_dialog": _bool(),  # generationConfig.enableAffectiveDialog
    "temperature": _num(0.0, 2.0),
    "top_p": _num(0.0, 1.0),
    "top_k": _int(1, 1000),
    "max_output_tokens": _int(1, 1_000_000),
    "seed": _int(0, 2**31 - 1),
    "start_of_speech_sensitivity": _one_of("high", "low"),
    "end_of_speech_sensitivity": _one_of("high", "low"),
    "silence_duration_ms": _int(0, 10_000),
    "prefix_padding_ms": _int(0, 10_000),
}
OPENAI: dict[str, Option] = {
    "model": _MODEL,
    "voice": _str(60),  # overrides the call-wide voice on this provider (kept across a switch)
    "instructions": _str(8000),  # overrides the call-wide instructions on this provider
    "noise_reduction": _one_of("near_field", "far_field", None),  # audio.input.noise_reduction
    "semantic_vad": _eagerness_or_bool(),  # turn_detection type semantic_vad (+ eagerness)
    "vad_threshold": _num(0.0, 1.0),  # server_vad
    "silence_duration_ms": _int(0, 10_000),
    "prefix_padding_ms": _int(0, 10_000),
    "transcription_model": _str(),
    "speed": _num(0.25, 1.5),
    "max_output_tokens": Option(lambda v: v == "inf" or isinstance(v, int) and not isinstance(v, bool)
                                and 1 <= v <= 4096, "an integer 1..4096 or \"inf\""),
    "tool_choice": _one_of("auto", "none", "required"),
}
DEEPGRAM: dict[str, Option] = {
    "model": _MODEL,
    "keyterm": _strs(),  # Nova-3; repeated query parameter
    "keywords": _strs(),  # Nova-2 and older
    "smart_format": _bool(),
    "diarize": _bool(),
    "numerals": _bool(),
    "profanity_filter": _bool(),
    "filler_words": _bool(),
    "dictation": _bool(),
    "punctuate": _bool(),
    "redact": _strs(10),
    "endpointing": Option(lambda v: v is False or isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10_000,
                          "false or milliseconds 0..10000"),
    "utterance_end_ms": _int(1000, 5000),
    "tag": _strs(10),
    "mip_opt_out": _bool(),
}
OPENAI_LIVE: dict[str, Option] = {  # docs/providers/openai-live.md
    "model": _MODEL,
    "voice": _str(60),  # a GPT-Live built-in voice; others fall back to the default
    "instructions": _str(8000),
    "delegation_model": _str(),  # the Responses backend that runs the session's tools
    "delegation_instructions": _str(8000),
}
TABLES: dict[str, dict[str, Option]] = {"gemini": GEMINI, "openai": OPENAI, "deepgram": DEEPGRAM,
                                        "openai_live": OPENAI_LIVE}


def split(options: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Validate `provider_options`: returns (the known options per provider, the unknown names as
    `provider.name`). A known option with a bad value raises BadMessage naming it."""
    known: dict[str, dict[str, Any]] = {}
    unknown: list[str] = []
    for provider, values in options.items():
        table = TABLES.get(provider)
        if table is None:
            unknown.append(str(provider)[:40])
            continue
        kept: dict[str, Any] = {}
        for name, value in values.items():
            option = table.get(name)
            if option is None:
                unknown.append(f"{provider}.{str(name)[:40]}")
            elif not option.check(value):
                raise BadMessage(f"provider_options.{provider}.{name} must be {option.expected}")
            else:
                kept[name] = value
        known[provider] = kept
    return known, unknown


# -- where each option goes on the wire ------------------------------------------------------------
def gemini_setup(setup: dict[str, Any], opts: Mapping[str, Any]) -> None:
    """Apply Gemini options to a `setup` object in place (gemini-live §setup field names)."""
    gen = setup.setdefault("generationConfig", {})
    for ours, wire in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"),
                       ("max_output_tokens", "maxOutputTokens"), ("seed", "seed"),
                       ("affective_dialog", "enableAffectiveDialog")):
        if ours in opts:
            gen[wire] = opts[ours]
    thinking = {wire: opts[ours] for ours, wire in (("thinking_budget", "thinkingBudget"),
                                                     ("include_thoughts", "includeThoughts")) if ours in opts}
    if thinking:
        gen["thinkingConfig"] = thinking
    if "proactive_audio" in opts:
        setup["proactivity"] = {"proactiveAudio": opts["proactive_audio"]}
    vad = setup.setdefault("realtimeInputConfig", {}).setdefault("automaticActivityDetection", {})
    if "start_of_speech_sensitivity" in opts:
        vad["startOfSpeechSensitivity"] = f"START_SENSITIVITY_{opts['start_of_speech_sensitivity'].upper()}"
    if "end_of_speech_sensitivity" in opts:
        vad["endOfSpeechSensitivity"] = f"END_SENSITIVITY_{opts['end_of_speech_sensitivity'].upper()}"
    for ours, wire in (("silence_duration_ms", "silenceDurationMs"), ("prefix_padding_ms", "prefixPaddingMs")):
        if ours in opts:
            vad[wire] = opts[ours]


def openai_session(session: dict[str, Any], opts: Mapping[str, Any]) -> None:
    """Apply OpenAI options to a GA `session.update` session object in place."""
    audio_in = session.setdefault("audio", {}).setdefault("input", {})
    if "noise_reduction" in opts:
        nr = opts["noise_reduction"]
        audio_in["noise_reduction"] = {"type": nr} if nr else None
    if "transcription_model" in opts and isinstance(audio_in.get("transcription"), dict):
        audio_in["transcription"]["model"] = opts["transcription_model"]
    turn = audio_in.get("turn_detection")
    semantic = opts.get("semantic_vad")
    if semantic:
        turn = {"type": "semantic_vad", "eagerness": semantic if isinstance(semantic, str) else "auto"}
    elif isinstance(turn, dict):
        for ours, wire in (("vad_threshold", "threshold"), ("silence_duration_ms", "silence_duration_ms"),
                           ("prefix_padding_ms", "prefix_padding_ms")):
            if ours in opts:
                turn[wire] = opts[ours]
    audio_in["turn_detection"] = turn
    if "speed" in opts:
        session["audio"].setdefault("output", {})["speed"] = opts["speed"]
    for name in ("max_output_tokens", "tool_choice"):
        if name in opts:
            session[name] = opts[name]


def deepgram_query(params: dict[str, str | list[str]], opts: Mapping[str, Any]) -> None:
    """Apply Deepgram options to the /v1/listen query parameters in place (lists repeat the key)."""
    for name, value in opts.items():
        if name == "model":
            continue
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, list):
            params[name] = [str(v) for v in value]
        else:
            params[name] = str(value)
