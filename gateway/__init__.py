"""voice-gateway: a real-time voice WebSocket gateway (Gemini Live, OpenAI Realtime, Deepgram)."""

__version__ = "0.1.0"
