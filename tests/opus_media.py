"""Client-side Opus/WebM encoding for tests (PyAV's libopus encoder and WebM muxer: what a browser's
WebRTC stack or MediaRecorder produces, made offline)."""

from __future__ import annotations

import io

import av
import numpy as np

FRAME_SAMPLES = 960  # 20 ms at 48 kHz


def _frames(pcm16_48k: bytes):  # noqa: ANN202
    samples = np.frombuffer(pcm16_48k, dtype="<i2")
    samples = np.concatenate([samples, np.zeros(-len(samples) % FRAME_SAMPLES, dtype="<i2")])
    for i in range(0, len(samples), FRAME_SAMPLES):
        frame = av.AudioFrame.from_ndarray(samples[i:i + FRAME_SAMPLES].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, i
        yield frame


def opus_packets(pcm16_48k: bytes, bit_rate: int = 32000) -> list[bytes]:
    """One raw Opus packet per 20 ms of 48 kHz mono PCM16."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format, encoder.bit_rate = 48000, "mono", "s16", bit_rate
    packets = [bytes(p) for f in _frames(pcm16_48k) for p in encoder.encode(f)]
    return packets + [bytes(p) for p in encoder.encode(None)]


def webm_stream(pcm16_48k: bytes, bit_rate: int = 32000) -> bytes:
    """A WebM file with one Opus track, as MediaRecorder would stream it."""
    out = io.BytesIO()
    container = av.open(out, "w", format="webm")
    stream = container.add_stream("libopus", rate=48000)
    stream.layout, stream.bit_rate = "mono", bit_rate
    for frame in _frames(pcm16_48k):
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return out.getvalue()
