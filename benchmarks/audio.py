"""Cost per 20 ms frame of the gateway's transcoding paths, against CPython audioop doing the same.

    .venv/bin/python benchmarks/audio.py [--frames 3000] [--repeat 7]     (or: -m benchmarks.audio)

Twilio uplink: μ-law 8 kHz → PCM16 16 kHz (for Gemini). Downlink: PCM16 24 kHz → μ-law 8 kHz.
Streaming objects process one frame per call, as the gateway does. Figures are the best of
`--repeat` runs (the least disturbed by other processes) of `--frames` frames (3000 frames = one
call-minute). Also printed: how much audio each resampler holds back (latency), since
audioop.ratecv's zero delay comes from not filtering.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

# Run as a script, this file's directory comes first on sys.path and this module would shadow the
# `audio` package; `python -m benchmarks.audio` from the repo root needs no help.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from audio.convert import FormatConverter  # noqa: E402
from audio.dtmf import DtmfDetector  # noqa: E402
from audio.formats import MULAW_8K, PCM16_16K, PCM16_24K  # noqa: E402
from audio.g711 import ulaw_decode, ulaw_encode  # noqa: E402
from audio.resample import ResampleStream, group_delay_s, resample  # noqa: E402

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # stdlib ≤ 3.12; `audioop-lts` on 3.13+
except ImportError:  # pragma: no cover - only without audioop-lts on 3.13+
    audioop = None

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "speech_16k.wav"
FRAMES_PER_MINUTE = 3000


def speech_frames(rate_hz: int, encoding: str, count: int) -> list[bytes]:
    """`count` 20 ms frames of the speech fixture (looped) in the given format."""
    samples, _ = sf.read(FIXTURE, dtype="int16")
    pcm = resample(samples.astype("<i2").tobytes(), 16000, rate_hz)
    if encoding == "mulaw":
        pcm = ulaw_encode(pcm)
    size = rate_hz // 50 * (1 if encoding == "mulaw" else 2)
    frames = [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]
    return [frames[i % len(frames)] for i in range(count)]


def us_per_frame(make_step: Callable[[], Callable[[bytes], object]], frames: list[bytes], repeat: int) -> float:
    """Best µs per frame over the runs; a fresh stream per run (`make_step` builds one), warmed up first."""
    runs = []
    for _ in range(repeat + 1):
        step = make_step()
        start = time.perf_counter()
        for frame in frames:
            step(frame)
        runs.append((time.perf_counter() - start) / len(frames) * 1e6)
    return min(runs[1:])  # the least disturbed run: other processes share these cores


# -- the paths ----------------------------------------------------------------------------------------
def ours_uplink():
    return FormatConverter(MULAW_8K, PCM16_16K).convert


def ours_downlink():
    return FormatConverter(PCM16_24K, MULAW_8K).convert


def audioop_uplink():
    state = [None]

    def step(frame: bytes) -> bytes:
        out, state[0] = audioop.ratecv(audioop.ulaw2lin(frame, 2), 2, 1, 8000, 16000, state[0])
        return out

    return step


def audioop_downlink():
    state = [None]

    def step(frame: bytes) -> bytes:
        out, state[0] = audioop.ratecv(frame, 2, 1, 24000, 8000, state[0])
        return audioop.lin2ulaw(out, 2)

    return step


def soxr_stream(in_rate: int, out_rate: int, pre: Callable[[bytes], bytes] | None,
                post: Callable[[bytes], bytes] | None):
    def make():
        stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")

        def step(frame: bytes) -> bytes:
            pcm = pre(frame) if pre else frame
            out = stream.resample_chunk(np.frombuffer(pcm, dtype="<i2")).tobytes()
            return post(out) if post else out

        return step

    return make


def held_back_ms(process: Callable[[bytes], bytes], frames: list[bytes], in_rate: int, out_rate: int,
                 in_bytes_per_sample: int, out_bytes_per_sample: int) -> tuple[float, float]:
    """(min, max) over the stream of audio fed but not yet returned, in ms (after the first 10 frames)."""
    fed = produced = 0
    lags = []
    for i, frame in enumerate(frames[:500]):
        fed += len(frame) // in_bytes_per_sample
        produced += len(process(frame)) // out_bytes_per_sample
        if i >= 10:
            lags.append(1000 * (fed / in_rate - produced / out_rate))
    return min(lags), max(lags)


# -- report ---------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=FRAMES_PER_MINUTE)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    up_frames = speech_frames(8000, "mulaw", args.frames)
    down_frames = speech_frames(24000, "pcm16", args.frames)
    pcm8_frames = [ulaw_decode(f) for f in up_frames]
    down8_frames = speech_frames(8000, "pcm16", args.frames)

    rows: list[tuple[str, float, float | None]] = []

    def row(name: str, ours: Callable, theirs: Callable | None, frames: list[bytes]) -> None:
        mine = us_per_frame(ours, frames, args.repeat)
        other = us_per_frame(theirs, frames, args.repeat) if theirs and audioop else None
        rows.append((name, mine, other))

    row("uplink   μ-law 8k → PCM16 16k (stream)", ours_uplink, audioop_uplink, up_frames)
    row("downlink PCM16 24k → μ-law 8k (stream)", ours_downlink, audioop_downlink, down_frames)
    row("  codec  μ-law decode (ulaw2lin)", lambda: ulaw_decode, lambda: lambda f: audioop.ulaw2lin(f, 2), up_frames)
    row("  codec  μ-law encode (lin2ulaw)", lambda: ulaw_encode, lambda: lambda f: audioop.lin2ulaw(f, 2), down8_frames)
    row("  resample 8k → 16k (vs ratecv)", lambda: ResampleStream(8000, 16000).process,
        lambda: _ratecv_step(8000, 16000), pcm8_frames)
    row("  resample 24k → 8k (vs ratecv)", lambda: ResampleStream(24000, 8000).process,
        lambda: _ratecv_step(24000, 8000), down_frames)
    soxr_up = us_per_frame(soxr_stream(8000, 16000, ulaw_decode, None), up_frames, args.repeat)
    soxr_down = us_per_frame(soxr_stream(24000, 8000, None, ulaw_encode), down_frames, args.repeat)
    dtmf_8k = us_per_frame(lambda: DtmfDetector(8000).feed, pcm8_frames, args.repeat)

    print(f"{args.frames} frames of 20 ms, best of {args.repeat} runs; µs per frame "
          f"(CPU ms per call-minute = µs × {FRAMES_PER_MINUTE} / 1000)\n")
    print(f"{'path':44} {'ours µs':>8} {'audioop µs':>11} {'ours/audioop':>13} {'ours ms/call-min':>17}")
    for name, mine, other in rows:
        ratio = f"{mine / other:13.1f}" if other else f"{'n/a':>13}"
        other_s = f"{other:11.2f}" if other else f"{'n/a':>11}"
        print(f"{name:44} {mine:8.2f} {other_s} {ratio} {mine * FRAMES_PER_MINUTE / 1000:17.1f}")
    print(f"\nfor comparison, the same paths with soxr.ResampleStream (HQ, int16): uplink {soxr_up:.2f} µs, "
          f"downlink {soxr_down:.2f} µs")
    print(f"DTMF detector, one 20 ms frame at 8 kHz: {dtmf_8k:.2f} µs")

    opus_report(args, rows[0][1])

    print("\naudio held back by the resampler, ms (min..max over a stream of 20 ms frames)")
    for label, in_rate, out_rate, frames in (
        ("uplink   8k → 16k", 8000, 16000, pcm8_frames),
        ("downlink 24k → 8k", 24000, 8000, down_frames),
    ):
        ours = held_back_ms(ResampleStream(in_rate, out_rate).process, frames, in_rate, out_rate, 2, 2)
        sox = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
        theirs = held_back_ms(lambda f, s=sox: s.resample_chunk(np.frombuffer(f, dtype="<i2")).tobytes(),
                              frames, in_rate, out_rate, 2, 2)
        print(f"  {label}: ours {ours[0]:.2f}..{ours[1]:.2f} (group delay {group_delay_s(in_rate, out_rate) * 1e3:.2f})"
              f"   soxr HQ {theirs[0]:.2f}..{theirs[1]:.2f}   audioop.ratecv ~0 (linear interpolation, no anti-alias filter)")


def opus_report(args: argparse.Namespace, mulaw_uplink_us: float) -> None:
    """Decode cost of compressed browser input (audio/compressed.py, PyAV libopus) per 20 ms frame,
    to PCM16 16 kHz (what Gemini takes), against the μ-law uplink measured in the same run."""
    try:
        import av
    except ImportError:
        print("\nOpus/WebM: PyAV not installed (pip install -e '.[opus]'), skipped")
        return
    from audio.compressed import OpusDecoder, WebmOpusDecoder

    pcm48 = b"".join(speech_frames(48000, "pcm16", args.frames))
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format, encoder.bit_rate = 48000, "mono", "s16", 32000
    samples = np.frombuffer(pcm48, dtype="<i2")
    packets: list[bytes] = []
    out = io.BytesIO()
    container = av.open(out, "w", format="webm")
    stream = container.add_stream("libopus", rate=48000)
    stream.layout, stream.bit_rate = "mono", 32000
    for i in range(0, len(samples) - 959, 960):
        for target in (encoder, stream):
            frame = av.AudioFrame.from_ndarray(samples[i:i + 960].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, i
            encoded = target.encode(frame)
            if target is encoder:
                packets += [bytes(p) for p in encoded]
            else:
                for packet in encoded:
                    container.mux(packet)
    container.close()
    webm = out.getvalue()
    piece = len(webm) // len(packets) + 1  # the stream cut into as many pieces as there are 20 ms frames
    pieces = [webm[i:i + piece] for i in range(0, len(webm), piece)]
    opus_us = us_per_frame(lambda: OpusDecoder(16000).decode, packets, args.repeat)
    webm_us = us_per_frame(lambda: WebmOpusDecoder(16000).feed, pieces, args.repeat) * len(pieces) / len(packets)
    print(f"\nOpus/WebM input → PCM16 16 kHz, µs per 20 ms frame (32 kbit/s, {len(packets)} frames; "
          f"ratio against the μ-law uplink {mulaw_uplink_us:.2f} µs above)")
    for name, cost in (("raw Opus packet (encoding opus)", opus_us), ("WebM/Opus stream (encoding webm)", webm_us)):
        print(f"  {name:34} {cost:8.2f} µs  ×{cost / mulaw_uplink_us:5.1f}  "
              f"{cost * FRAMES_PER_MINUTE / 1000:6.1f} ms/call-min")


def _ratecv_step(in_rate: int, out_rate: int):
    state = [None]

    def step(frame: bytes) -> bytes:
        out, state[0] = audioop.ratecv(frame, 2, 1, in_rate, out_rate, state[0])
        return out

    return step


if __name__ == "__main__":
    main()
