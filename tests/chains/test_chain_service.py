"""The chain service in-process (embedded REST fakes, no keys): the cost hook and the cost gate that the
budget ledger of the next chains hangs on, and lazy start of the fakes."""

from __future__ import annotations

import pytest

from gateway.chains.outcome import CostRecord
from gateway.chains.service import ChainService
from gateway.config import load_settings
from gateway.errors import BadAudio
from providers.chains.transcription import TranscriptionOptions, sniff_audio
from tests.chains.harness import DTMF_WAV

OPTIONS = TranscriptionOptions(audio=DTMF_WAV, kind=sniff_audio(DTMF_WAV))


async def test_cost_hook_gets_each_billed_answer_and_the_gate_can_skip_a_provider() -> None:
    records: list[CostRecord] = []
    gate_calls: list[tuple[str, str]] = []

    def gate(chain: str, provider: str) -> bool:
        gate_calls.append((chain, provider))
        return provider != "deepgram"  # deepgram's budget is spent

    service = ChainService(load_settings({}), on_cost=records.append, cost_gate=gate)
    try:
        assert service.fakes == {}  # nothing started before the first request
        outcome = await service.transcribe(OPTIONS)
        assert outcome.ok and outcome.provider == "groq" and outcome.result.text == "159#"
        assert [(a.provider, a.outcome, a.code) for a in outcome.attempts] == [
            ("deepgram", "skipped", "budget_exceeded"), ("groq", "success", None)]
        assert gate_calls == [("transcription", "deepgram"), ("transcription", "groq")]
        assert len(records) == 1
        record = records[0]
        assert (record.chain, record.provider, record.model, record.request_id) == (
            "transcription", "groq", "whisper-large-v3", outcome.request_id)
        assert record.usage.audio_seconds == pytest.approx(0.9, abs=0.01)
        # Groq bills at least 10 s, at the price table's $0.0010 per minute (providers/chains/prices.py)
        assert record.cost_usd == pytest.approx(10 / 60 * 0.0010) == pytest.approx(outcome.cost_usd)
        assert set(service.fakes) == {"deepgram", "groq", "openai"}
        assert service.fakes["deepgram"].requests == []  # skipped without being contacted
    finally:
        await service.stop()


async def test_bad_audio_is_refused_before_any_fake_starts() -> None:
    service = ChainService(load_settings({}))
    with pytest.raises(BadAudio):
        await service.transcribe(TranscriptionOptions(audio=b"\0" * 100, kind=OPTIONS.kind))
    assert service.fakes == {}
    await service.stop()
