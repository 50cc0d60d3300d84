"""Per-connection ceilings, in virtual time."""

from __future__ import annotations

import pytest

from audio.formats import MULAW_8K, PCM16_16K, PCM16_24K
from gateway.errors import MessageTooBig, RateLimited
from gateway.limits import ConnectionLimits, FrameRateLimiter, limits_for_format


class StepClock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


def limiter(**kw) -> tuple[FrameRateLimiter, StepClock]:
    clock = StepClock()
    return FrameRateLimiter(ConnectionLimits(**kw), clock), clock


def test_real_time_audio_is_never_limited() -> None:
    clock = StepClock()
    rl = FrameRateLimiter(limits_for_format(PCM16_16K), clock)
    for _ in range(50 * 60):  # one minute of 20 ms frames
        rl.check(640)
        clock.t += 0.02
    assert rl.admitted_frames == 3000 and rl.admitted_bytes == 3000 * 640


def test_oversized_message_is_message_too_big() -> None:
    rl, _ = limiter()
    rl.check(65536)
    with pytest.raises(MessageTooBig) as exc:
        rl.check(65537)
    assert exc.value.close_code == 1009


def test_frame_flood_is_rate_limited_after_the_burst() -> None:
    rl, clock = limiter(max_frames_per_s=100, burst_s=1.0)
    for _ in range(100):
        rl.check(10)
    with pytest.raises(RateLimited) as exc:
        rl.check(10)
    assert exc.value.close_code == 1008 and exc.value.code == "rate_limited"
    clock.t += 0.0625  # 6.25 frames' worth of refill
    for _ in range(6):
        rl.check(10)
    with pytest.raises(RateLimited):
        rl.check(10)


def test_byte_flood_is_rate_limited() -> None:
    rl, clock = limiter(max_bytes_per_s=10_000, max_message_bytes=4000, burst_s=1.0)
    rl.check(4000)
    rl.check(4000)
    with pytest.raises(RateLimited):
        rl.check(4000)  # 12 000 bytes inside the first second
    clock.t += 0.25  # +2500 bytes → 4500 available
    rl.check(4000)


def test_refused_message_takes_nothing() -> None:
    rl, _ = limiter(max_bytes_per_s=1000, max_message_bytes=1000, max_frames_per_s=100)
    rl.check(900)
    with pytest.raises(RateLimited):
        rl.check(500)
    rl.check(100)  # the refused 500 did not drain the bucket


def test_bucket_never_holds_more_than_the_burst() -> None:
    rl, clock = limiter(max_frames_per_s=10, burst_s=0.5)
    clock.t += 3600
    for _ in range(5):
        rl.check(1)
    with pytest.raises(RateLimited):
        rl.check(1)


def test_clock_stepping_back_refills_nothing() -> None:
    rl, clock = limiter(max_frames_per_s=2, burst_s=1.0)
    rl.check(1)
    rl.check(1)
    clock.t -= 100
    with pytest.raises(RateLimited):
        rl.check(1)
    clock.t += 100.5  # back to where we were, plus half a second → one frame
    rl.check(1)


def test_idle_timeout_counts_from_the_last_admitted_message() -> None:
    rl, clock = limiter(idle_timeout_s=30)
    clock.t += 20
    assert rl.seconds_until_idle() == pytest.approx(10)
    rl.check(1)
    clock.t += 29.5
    assert not rl.idle_expired()
    clock.t += 0.5
    assert rl.idle_expired() and rl.seconds_until_idle() == 0


def test_limits_follow_the_audio_bitrate() -> None:
    base = ConnectionLimits(max_frames_per_s=50, max_message_bytes=4096)
    pcm24 = limits_for_format(PCM16_24K, base)
    assert pcm24.max_bytes_per_s == 4 * 48_000
    assert pcm24.max_frames_per_s == 100  # the 100/s floor
    mulaw = limits_for_format(MULAW_8K, base)
    assert mulaw.max_bytes_per_s == 4 * 8000
    json_wrapped = limits_for_format(MULAW_8K, base, wire_overhead=1.6)
    assert json_wrapped.max_bytes_per_s == pytest.approx(4 * 8000 * 1.6)
    assert limits_for_format(MULAW_8K, ConnectionLimits(max_frames_per_s=300)).max_frames_per_s == 300


def test_a_max_size_message_always_fits_one_burst() -> None:
    lim = limits_for_format(MULAW_8K)  # 4× μ-law is 32 000 B/s, under one 64 KiB message
    rl = FrameRateLimiter(lim, StepClock())
    rl.check(lim.max_message_bytes)


def test_sustained_faster_than_real_time_is_refused() -> None:
    lim = limits_for_format(PCM16_16K)  # 128 000 B/s
    clock = StepClock()
    rl = FrameRateLimiter(lim, clock)
    with pytest.raises(RateLimited):
        for _ in range(10_000):  # 8× real time: 640 B every 2.5 ms
            rl.check(640)
            clock.t += 0.0025
    # 2× over the ceiling drains the one-second burst in about one second
    assert 0.9 < clock.t - 500.0 < 1.2


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        ConnectionLimits(max_frames_per_s=0)
