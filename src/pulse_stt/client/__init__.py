"""Python client for the Pulse speech-to-text API (pulse-stt or the hosted service).

```python
from pulse_stt.client import PulseClient, StreamOptions, Transcription

with PulseClient("http://127.0.0.1:8000", "<key>") as client:
    for message in client.stream_file("call.wav", StreamOptions(language="en")):
        if isinstance(message, Transcription) and message.is_final:
            print(message.transcript)
```

`AsyncPulseClient` is the asyncio version. `pip install pulse-stt` is enough for REST and
for streaming your own frames; decoding audio files here (`file_frames`, `stream_file`)
needs the `audio` extra, the microphone the `mic` extra. See docs/CLIENT.md.
"""

from pulse_stt.client.errors import (
    AuthenticationError,
    ParameterError,
    PulseConnectionError,
    PulseError,
)
from pulse_stt.client.messages import (
    BrowserToken,
    FileResult,
    Message,
    ServerError,
    SpeechEvent,
    Transcription,
    UnknownMessage,
    Utterance,
    Word,
    parse_message,
)
from pulse_stt.client.options import FileOptions, StreamOptions
from pulse_stt.client.sources import file_frames, microphone_frames
from pulse_stt.client.streaming import AsyncPulseClient, AsyncStream
from pulse_stt.client.subtitles import Cue, CueLimits, build_cues, to_srt, to_vtt
from pulse_stt.client.sync import PulseClient, SyncStream

__all__ = [
    "AsyncPulseClient",
    "AsyncStream",
    "AuthenticationError",
    "BrowserToken",
    "Cue",
    "CueLimits",
    "FileOptions",
    "FileResult",
    "Message",
    "ParameterError",
    "PulseClient",
    "PulseConnectionError",
    "PulseError",
    "ServerError",
    "SpeechEvent",
    "StreamOptions",
    "SyncStream",
    "Transcription",
    "UnknownMessage",
    "Utterance",
    "Word",
    "build_cues",
    "file_frames",
    "microphone_frames",
    "parse_message",
    "to_srt",
    "to_vtt",
]
