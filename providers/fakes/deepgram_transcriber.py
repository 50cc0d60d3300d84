"""The fake Deepgram's transcriber in the DTMF dialect: decoded audio and control messages in,
server messages out, with endpointing, interim and final results and periodic empty finals
(docs/providers/deepgram.md §3). Every time value is STREAM time, so the same audio yields the same
messages however fast it is sent.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from providers.fakes.common import DialectRecognizer, PartialWords, SpeechStart, Utterance
from providers.fakes.deepgram_messages import (
    DTMF_CONFIDENCE,
    SPEECH_CONFIDENCE,
    SPEECH_WORD,
    ModelInfo,
    metadata_message,
    results_message,
    speech_started_message,
    utterance_end_message,
    word,
)
from providers.fakes.deepgram_wire import ListenAudioDecoder, ListenParams

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
