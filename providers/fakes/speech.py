"""Offline speech for the fakes: what a simulated provider hears in plain speech and how it answers.

Beside the DTMF dialect (providers/fakes/dialect.py), which stays the deterministic language of the
tests: a fake with a `SpeechEngine` transcribes an utterance that carried no DTMF digits and answers it
in synthesized speech; a fake without one (the default) keeps the parrot echo. The gateway's embedded
default turns it on (so `make run` is a real voice loop with no keys), as does `fake-provider --speech`.

Every fake reaches it through `FakeServer.hear(...)` / `FakeServer.speak(...)`; a new fake needs no
speech code of its own. The engine is an interface so tests can give a fake a scripted one, and the
default `OfflineSpeech` does the CPU work (PocketSphinx, eSpeak NG) in worker processes started on
first use, away from the event loop the fakes share with the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol

log = logging.getLogger("providers.fakes.speech")

REPLY_PREFIX = "I heard"
NOTHING_HEARD_REPLY = "Sorry, I did not catch that."


class SpeechEngine(Protocol):
    """Speech recognition and synthesis for a fake (both async: they may take a second of CPU)."""

    async def transcribe(self, pcm16: bytes, sample_rate_hz: int) -> str:
        """The words in one utterance of PCM16 mono audio, lower case, "" for none."""
        ...

    async def synthesize(self, text: str, sample_rate_hz: int, voice: str | None = None) -> bytes:
        """`text` spoken as PCM16 mono at `sample_rate_hz`; `voice` picks a distinct speaker."""
        ...

    async def close(self) -> None:
        ...


def reply_text(heard: str) -> str:
    """What the simulated assistant answers to `heard` (a transcript): it says back what it heard."""
    return f"{REPLY_PREFIX}: {heard}." if heard else NOTHING_HEARD_REPLY


class OfflineSpeech:
    """PocketSphinx (en-US) and eSpeak NG in worker processes (providers/fakes/speech_worker.py).

    One recognition worker and one synthesis worker for every fake and call: utterances are recognised
    one at a time, in arrival order, and an answer is spoken while the next utterance is being
    recognised. Each worker starts on first use (DTMF-only use starts none) and stops at `close()`."""

    def __init__(self) -> None:
        self._pools: dict[str, ProcessPoolExecutor] = {}

    def _executor(self, job: str) -> ProcessPoolExecutor:
        if job not in self._pools:
            from providers.fakes import speech_worker

            warm_up = speech_worker.warm_up_recognizer if job == "recognize" else speech_worker.warm_up_synthesizer
            # spawn, not fork: the parent runs an event loop and threads (fork would copy their locks)
            self._pools[job] = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                   initializer=warm_up)
        return self._pools[job]

    async def transcribe(self, pcm16: bytes, sample_rate_hz: int) -> str:
        from providers.fakes import speech_worker

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor("recognize"), speech_worker.transcribe, pcm16,
                                          sample_rate_hz)

    async def synthesize(self, text: str, sample_rate_hz: int, voice: str | None = None) -> bytes:
        from providers.fakes import speech_worker

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor("synthesize"), speech_worker.synthesize, text,
                                          sample_rate_hz, voice)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown)


__all__ = ["NOTHING_HEARD_REPLY", "OfflineSpeech", "REPLY_PREFIX", "SpeechEngine", "reply_text"]
