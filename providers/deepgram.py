"""Deepgram streaming speech-to-text (`/v1/listen`) as a sans-I/O adapter (docs/providers/deepgram.md).

Invariants: audio goes out untouched in the client's own format (the query string declares it), as
binary frames; the link is up at the upgrade (no setup message exists); every final Result
acknowledges the audio it covers, in provider-stream seconds; parse() never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlencode

from audio.formats import AudioFormat
from gateway.errors import ProviderError, ProviderProtocolError, ProviderRejected, ProviderUnavailable
from gateway.events import (
    AudioAcknowledged,
    ConversationItem,
    ProviderEvent,
    ProviderFailed,
    Transcript,
    TurnCompleted,
    UserSpeechStarted,
)
from gateway.session_config import SessionConfig
from providers import options
from providers.base import Capabilities, ConnectRequest, Endpoint, Frame, ProviderAdapter, ws_url
from providers.common_wire import (
    close_message,
    decode_object,
    dumps,
    number,
    protocol_failure,
    scrub,
)

DEFAULT_MODEL = "nova-3"
ENCODING_PARAM = {"pcm16": "linear16", "mulaw": "mulaw", "alaw": "alaw"}
# §2.1 control messages: JSON text frames (an empty binary frame would end the stream).
KEEPALIVE = dumps({"type": "KeepAlive"})
FINALIZE = dumps({"type": "Finalize"})
CLOSE_STREAM = dumps({"type": "CloseStream"})
IDLE_CLOSE_TAG = "NET-0001"  # §4: no audio or text for ~10 s; with our 5 s KeepAlive it is our own doing


class DeepgramAdapter(ProviderAdapter):
    name: ClassVar[str] = "deepgram"
    breaker_name: ClassVar[str] = "deepgram_stt"
    capabilities: ClassVar[Capabilities] = Capabilities(
        audio_output=False, transcripts=True, assistant_transcripts=False, tools=False)
    ready_on_upgrade: ClassVar[bool] = True
    keepalive_idle_s: ClassVar[float | None] = 5.0  # §4: send KeepAlive every 3–5 s of silence

    def __init__(self, config: SessionConfig, endpoint: Endpoint) -> None:
        super().__init__(config, endpoint)
        self._closing = False  # close_frames() was sent: the 1000 that follows is ours
        self._turn_has_words = False  # a non-empty final since the last end of the user's turn

    # -- formats ----------------------------------------------------------------------------------
    @property
    def input_format(self) -> AudioFormat:
        return self.config.input_format  # Deepgram takes every format we accept: no transcoding

    @property
    def output_format(self) -> AudioFormat | None:
        return None  # transcripts only

    # -- opening ----------------------------------------------------------------------------------
    def query_params(self) -> dict[str, str | list[str]]:
        fmt = self.config.input_format
        params: dict[str, str | list[str]] = {
            "model": str(self.config.options_for("deepgram").get("model") or self.endpoint.model or DEFAULT_MODEL),
            "encoding": ENCODING_PARAM[fmt.encoding],
            "sample_rate": str(fmt.sample_rate_hz),
            "channels": "1",
            "interim_results": "true",
            # §1: the 10 ms default finalizes mid-sentence; 300 ms suits conversation.
            "endpointing": "300",
            # UtteranceEnd backs up endpointing in noise (needs interim_results).
            "utterance_end_ms": "1000",
            "vad_events": "true",
            "punctuate": "true",
        }
        if self.config.language:
            params["language"] = self.config.language
        options.deepgram_query(params, self.config.options_for("deepgram"))
        return params

    @property
    def model_name(self) -> str | None:
        return str(self.query_params()["model"])

    def connect_request(self) -> ConnectRequest:
        return ConnectRequest(url=f"{ws_url(self.endpoint.base_url)}/v1/listen?{urlencode(self.query_params(), doseq=True)}",
                              headers=(("Authorization", f"Token {self.endpoint.api_key}"),))

    def open_frames(self, *, history: Sequence[ConversationItem], resume_handle: str | None) -> list[Frame]:
        return []  # the query string is the whole configuration; no conversation to carry

    # -- during the call ---------------------------------------------------------------------------
    def audio_frame(self, data: bytes) -> Frame:
        return data  # a binary frame of raw audio (the link never hands us an empty chunk)

    def keepalive_frame(self) -> Frame:
        return KEEPALIVE

    def commit_frames(self) -> list[Frame]:
        return [FINALIZE]

    def close_frames(self) -> list[Frame]:
        self._closing = True
        return [CLOSE_STREAM]

    # -- receiving ---------------------------------------------------------------------------------
    def parse(self, frame: Frame) -> list[ProviderEvent]:
        message = decode_object(frame)
        kind = message.get("type") if message is not None else None
        if message is None or not isinstance(kind, str):
            return [protocol_failure(self.name, "deepgram sent a frame that is not a typed JSON message")]
        events: list[ProviderEvent] = []
        try:
            if kind == "Results":
                self._results(message, events)
            elif kind == "SpeechStarted":
                events.append(UserSpeechStarted(at_s=number(message.get("timestamp"))))
            elif kind == "UtteranceEnd":
                self._end_user_turn(events)  # endpointing missed it (noise): end the turn here
            elif kind == "Error":
                events.append(self._error(message))
            # Metadata, ConfigureSuccess/Failure and future types carry nothing we relay.
        except Exception as exc:  # the contract: parse() never raises
            events.append(protocol_failure(self.name, f"deepgram sent a malformed {scrub(kind, limit=60)} "
                                                      f"({type(exc).__name__})"))
        return events

    def _results(self, message: dict[str, Any], events: list[ProviderEvent]) -> None:
        start, duration = number(message.get("start")), number(message.get("duration"))
        if start is None or duration is None:
            events.append(protocol_failure(self.name, "deepgram sent Results without start/duration"))
            return
        end = start + duration
        text = _transcript(message).strip()
        if message.get("is_final") is not True:
            if text:  # interims stream ~1/s even in silence; an empty one says nothing
                events.append(Transcript(role="user", text=text, final=False, start_s=start, end_s=end))
            return
        if text:
            events.append(Transcript(role="user", text=text, final=True, start_s=start, end_s=end))
            self._turn_has_words = True
        # §2.2: a final settles its window, words or not: that audio is consumed.
        events.append(AudioAcknowledged(until_s=end))
        if message.get("speech_final") is True:
            self._end_user_turn(events)

    def _end_user_turn(self, events: list[ProviderEvent]) -> None:
        # speech_final on silence and an UtteranceEnd after speech_final would be empty turns.
        if self._turn_has_words:
            self._turn_has_words = False
            events.append(TurnCompleted(role="user"))

    def _error(self, message: dict[str, Any]) -> ProviderFailed:
        # Never quote `message`: it echoes the client text Deepgram could not parse.
        label = scrub(message.get("variant") or message.get("code") or "unknown", limit=80)
        detail = scrub(message.get("description"), self.endpoint.api_key)
        error = ProviderProtocolError(f"deepgram error {label}: {detail}", provider=self.name,
                                      error_type="protocol", breaker_failure=False, provider_code=label)
        return ProviderFailed(error=error, fatal_for_link=False)

    # -- failures -----------------------------------------------------------------------------------
    def classify_close(self, code: int | None, reason: str) -> ProviderError | None:
        """docs/providers/deepgram.md §4 close table (1000 after CloseStream, 1011 NET-0001/NET-0000, 1008 DATA-0000)."""
        message = close_message(self.name, code, reason, self.endpoint.api_key)
        if code == 1000:
            if self._closing:
                return None
            return ProviderUnavailable(message, provider=self.name, error_type="network",
                                       breaker_failure=False, provider_close_code=code)
        # the real reason ends "See https://dpgr.am/net0001" and may not contain the tag verbatim
        if code == 1011 and IDLE_CLOSE_TAG.lower().replace("-", "") in reason.lower().replace("-", ""):
            # docs/architecture.md: the idle close we caused is not a provider failure.
            return ProviderUnavailable(message, provider=self.name, error_type="timeout",
                                       breaker_failure=False, provider_close_code=code)
        if code == 1011:
            return ProviderUnavailable(message, provider=self.name, error_type="server", provider_close_code=code)
        if code == 1008:
            # DATA-0000: the audio does not match the declared encoding/sample_rate: our config.
            return ProviderRejected(message, provider=self.name, error_type="protocol", provider_close_code=code)
        if code is None or code == 1006:
            return ProviderUnavailable(message, provider=self.name, error_type="network", provider_close_code=code)
        return ProviderUnavailable(message, provider=self.name, error_type="protocol", provider_close_code=code)


def _transcript(message: dict[str, Any]) -> str:
    channel = message.get("channel")
    alternatives = channel.get("alternatives") if isinstance(channel, dict) else None
    first = alternatives[0] if isinstance(alternatives, list) and alternatives else None
    text = first.get("transcript") if isinstance(first, dict) else None
    return text if isinstance(text, str) else ""
