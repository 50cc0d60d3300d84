"""Per-connection ceilings on client WebSockets (docs/protocol.md): message size, frame rate, byte rate,
idle time.

Two token buckets per connection (frames and bytes), each refilled at its ceiling and holding at
most `burst_s` seconds of it, so a client may catch up after a short stall but cannot sustain more
than the ceiling. Ceilings follow the audio bitrate (`limits_for_format`): a caller streaming in
real time uses a quarter of its byte allowance. Time comes from the injected `now` (monotonic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from audio.formats import AudioFormat
from gateway.errors import MessageTooBig, RateLimited

MAX_MESSAGE_BYTES = 64 * 1024
MIN_FRAMES_PER_S = 100.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimits:
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_frames_per_s: float = 200.0
    max_bytes_per_s: float = 4 * 48_000 * 2  # 4× PCM16 48 kHz: the widest format we accept
    burst_s: float = 1.0
    idle_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if min(self.max_message_bytes, self.max_frames_per_s, self.max_bytes_per_s,
               self.burst_s, self.idle_timeout_s) <= 0:
            raise ValueError("connection limits must be positive")


def limits_for_format(fmt: AudioFormat, base: ConnectionLimits = ConnectionLimits(), *,
                      headroom: float = 4.0, wire_overhead: float = 1.0) -> ConnectionLimits:
    """Ceilings for a connection carrying `fmt` audio.

    Bytes: `headroom`× the format's real-time byte rate, times `wire_overhead` for transports that
    wrap audio (Twilio/Telnyx JSON + base64: pass ~1.6). Never less than one full-size message per
    burst, so a legitimate max-size message is never refused for its size alone. Frames:
    `base.max_frames_per_s`, but at least 100/s (10 ms frames plus control messages).
    """
    byte_rate = headroom * fmt.bytes_per_second * wire_overhead
    byte_rate = max(byte_rate, base.max_message_bytes / base.burst_s)
    return replace(base, max_bytes_per_s=byte_rate,
                   max_frames_per_s=max(base.max_frames_per_s, MIN_FRAMES_PER_S))


class FrameRateLimiter:
    """Feed every inbound message through `check(n_bytes)`; it raises instead of admitting.

    A refused message takes nothing from the buckets (the caller closes the connection with the
    error's close code, or drops the message and carries on). `idle_for_s()` is the time since the
    last admitted message, for the idle timeout.
    """

    def __init__(self, limits: ConnectionLimits, now: Callable[[], float]) -> None:
        self._now = now
        self.limits = limits  # (the setter below)
        start = now()
        self._frame_tokens = limits.max_frames_per_s * limits.burst_s
        self._byte_tokens = limits.max_bytes_per_s * limits.burst_s
        self._refilled_at = start
        self._last_message_at = start
        self.admitted_frames = 0
        self.admitted_bytes = 0

    @property
    def limits(self) -> ConnectionLimits:
        return self._limits

    @limits.setter
    def limits(self, limits: ConnectionLimits) -> None:
        """New ceilings (a call's format refines them); the buckets keep what they hold."""
        self._limits = limits
        # what check() reads per message, as plain attributes of the limiter
        self._max_bytes = limits.max_message_bytes
        self._fps, self._bps = limits.max_frames_per_s, limits.max_bytes_per_s
        self._fcap, self._bcap = limits.max_frames_per_s * limits.burst_s, limits.max_bytes_per_s * limits.burst_s

    def check(self, n_bytes: int) -> None:
        if n_bytes > self._max_bytes:
            raise MessageTooBig(f"message of {n_bytes} bytes is over the {self._max_bytes}-byte limit")
        # the refill, inline (every client frame comes through here); one clock read per message
        clock = self._now  # (a callable attribute: `self._now()` is not specialised on Python 3.11)
        now = clock()
        elapsed = now - self._refilled_at
        if elapsed > 0.0:
            self._refilled_at = now
            frame_tokens = self._frame_tokens + elapsed * self._fps
            if frame_tokens > self._fcap:
                frame_tokens = self._fcap
            byte_tokens = self._byte_tokens + elapsed * self._bps
            if byte_tokens > self._bcap:
                byte_tokens = self._bcap
        else:  # no time passed (or a clock that steps back): nothing to refill
            frame_tokens, byte_tokens = self._frame_tokens, self._byte_tokens
        if frame_tokens < 1.0:
            self._frame_tokens, self._byte_tokens = frame_tokens, byte_tokens
            raise RateLimited(f"more than {self._fps:g} messages per second")
        if byte_tokens < n_bytes:
            self._frame_tokens, self._byte_tokens = frame_tokens, byte_tokens
            raise RateLimited(f"more than {self._bps:g} bytes per second")
        self._frame_tokens = frame_tokens - 1.0
        self._byte_tokens = byte_tokens - n_bytes
        self._last_message_at = now
        self.admitted_frames += 1
        self.admitted_bytes += n_bytes

    def idle_for_s(self) -> float:
        return max(0.0, self._now() - self._last_message_at)

    def idle_expired(self) -> bool:
        return self.idle_for_s() >= self.limits.idle_timeout_s

    def seconds_until_idle(self) -> float:
        """How long the read loop may wait for the next message before the idle timeout."""
        return max(0.0, self.limits.idle_timeout_s - self.idle_for_s())
