"""Pure, synchronous audio code: formats, G.711 codecs, streaming resampling, DTMF, 20 ms framing."""

from audio.formats import AudioChunk, AudioFormat

__all__ = ["AudioChunk", "AudioFormat"]
