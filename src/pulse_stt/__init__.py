"""pulse-stt: a self-hosted, wire-compatible Pulse realtime speech-to-text server."""

__version__ = "0.1.0"
