"""API keys, browser tokens and usage, in a real database (SQLite file by default,
PostgreSQL by URL).

Keys are random 256-bit secrets, so a SHA-256 digest is a safe at-rest form; the digest
is looked up and then compared in constant time. Browser tokens are short-lived secrets
minted with a key (`POST /v1/tokens`): stored the same way, valid until they expire or
their key is revoked, and checked in the database so every server process sharing it
accepts them.

A revocation is permanent until an operator re-enables the key (`enable_key`); the
tokens the key minted before it are deleted with it and never come back. A key's `hint`
tells keys apart without giving a meaningful share of the secret away: `pstt_…` and the
last 4 characters of a generated key, `#` and 8 hex digits of the SHA-256 of any other.
A SQLite database file is made private (0600; a folder the store creates, 0700).

Every timestamp (creation, expiry, revocation, usage) comes from the store's clock: the
real UTC time unless the caller hands another (tests advance a fake one to expire tokens).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    create_engine,
    delete,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

KEY_PREFIX = "pstt_"
TOKEN_PREFIX = "pstt_tok_"
# Operator-chosen keys (`PULSE_STT_API_KEY`, `create_key(secret=...)`) must be at least this
# long; generated keys are 48 characters (256 random bits).
MIN_KEY_CHARS = 20
_GENERATED_KEY_CHARS = len(KEY_PREFIX) + 43  # secrets.token_urlsafe(32)
_HINT_FORMS = re.compile(r"pstt_…[A-Za-z0-9_-]{4}|#[0-9a-f]{8}")

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    digest: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    hint: Mapped[str] = mapped_column(String(16))  # to tell keys apart (see `key_hint`)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UsageRow(Base):
    __tablename__ = "usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    session_id: Mapped[str] = mapped_column(String(64))
    external_session_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    audio_seconds: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BrowserTokenRow(Base):
    __tablename__ = "browser_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


@dataclass(frozen=True)
class BrowserToken:
    secret: str  # shown once, to the caller that minted it
    key_id: int
    expires_at: datetime


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    hint: str
    created_at: datetime
    revoked_at: datetime | None
    audio_seconds: float = 0.0
    # Set when the key was found through a browser token: which token (its digest, never
    # the secret) and when it expires. Sessions count against the token's own limit and
    # end a bounded time after its expiry (api/admission.py, api/websocket.py).
    token_id: str | None = None
    token_expires_at: datetime | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_hint(secret: str) -> str:
    """What `keys list` shows of a key: `pstt_…` and the last 4 of a generated key's 43
    random characters; `#` and the first 8 hex digits of the SHA-256 of any other key
    (`printf %s "$KEY" | sha256sum | cut -c1-8`), which gives none of its characters away."""
    if secret.startswith(KEY_PREFIX) and len(secret) >= _GENERATED_KEY_CHARS:
        return KEY_PREFIX + "…" + secret[-4:]
    return _digest_hint(_digest(secret))


def _digest_hint(digest: str) -> str:
    return "#" + digest[:8]


def check_key_length(secret: str) -> None:
    """Refuse an operator-chosen key shorter than MIN_KEY_CHARS (ValueError)."""
    if len(secret) < MIN_KEY_CHARS:
        raise ValueError(
            f"an API key must be at least {MIN_KEY_CHARS} characters long (got {len(secret)}); "
            "use a long random one, e.g. `pulse-stt keys create` or "
            "`python -c 'import secrets; print(\"pstt_\" + secrets.token_urlsafe(32))'`"
        )


def _private_sqlite_file(url: str) -> None:
    """Create the SQLite file of `url` 0600 (its folder 0700 when it is created here) and
    make an existing one 0600, before SQLAlchemy opens it (SQLite gives its journal and
    WAL files the database file's mode)."""
    location = url.removeprefix("sqlite:///").partition("?")[0]
    if not location or location == ":memory:" or location.startswith("file:"):
        return
    path = Path(location).expanduser()
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError as exc:  # e.g. a file owned by another user: SQLite says what is wrong
        log.warning("could not make the database file %s private (0600): %s", path, exc)


def utc_now() -> datetime:
    """The store's default clock."""
    return datetime.now(UTC)


Clock = Callable[[], datetime]  # timezone-aware UTC


class Store:
    """Blocking database access; async callers run these methods in a thread."""

    def __init__(
        self, url: str, *, clock: Clock = utc_now, connect_args: dict[str, Any] | None = None
    ) -> None:
        self._now = clock
        if url.startswith("sqlite:///"):
            _private_sqlite_file(url)
        self._engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args or {})
        Base.metadata.create_all(self._engine)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._rewrite_clear_hints()

    def _rewrite_clear_hints(self) -> None:
        """Older versions stored a key's first 10 characters as its hint: replace those by
        the digest form (the secret itself is not known here)."""
        with self._sessions.begin() as db:
            for row in db.scalars(select(ApiKeyRow)):
                if not _HINT_FORMS.fullmatch(row.hint):
                    row.hint = _digest_hint(row.digest)

    def close(self) -> None:
        self._engine.dispose()

    def create_key(self, name: str, secret: str | None = None) -> tuple[ApiKey, str]:
        """Store a new key (random unless given) and return it with its secret, shown once.
        A given secret shorter than MIN_KEY_CHARS is refused (ValueError)."""
        if secret is None:
            secret = KEY_PREFIX + secrets.token_urlsafe(32)
        check_key_length(secret)
        with self._sessions.begin() as db:
            row = ApiKeyRow(
                name=name, digest=_digest(secret), hint=key_hint(secret), created_at=self._now()
            )
            db.add(row)
            db.flush()
            return _key(row), secret

    def ensure_key(self, name: str, secret: str) -> ApiKey:
        """Make sure `secret` (e.g. from PULSE_STT_API_KEY) is a stored key. A key an
        operator revoked stays revoked (the answer has `revoked_at` set: the caller says
        so); only `enable_key` brings it back. Shorter than MIN_KEY_CHARS: ValueError."""
        check_key_length(secret)
        with self._sessions.begin() as db:
            row = db.scalar(select(ApiKeyRow).where(ApiKeyRow.digest == _digest(secret)))
            if row is None:
                row = ApiKeyRow(
                    name=name, digest=_digest(secret), hint=key_hint(secret), created_at=self._now()
                )
                db.add(row)
                db.flush()
            return _key(row)

    def authenticate(self, secret: str) -> ApiKey | None:
        digest = _digest(secret)
        with self._sessions() as db:
            row = db.scalar(select(ApiKeyRow).where(ApiKeyRow.digest == digest))
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.digest, digest):
            return None
        return _key(row)

    def mint_token(self, key_id: int, ttl_s: float) -> BrowserToken:
        """A new short-lived token acting for key `key_id`; expired tokens are purged."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._now()
        expires_at = now + timedelta(seconds=ttl_s)
        with self._sessions.begin() as db:
            db.execute(delete(BrowserTokenRow).where(BrowserTokenRow.expires_at <= now))
            db.add(
                BrowserTokenRow(
                    key_id=key_id, digest=_digest(secret), created_at=now, expires_at=expires_at
                )
            )
        return BrowserToken(secret, key_id, expires_at)

    def authenticate_token(self, secret: str) -> ApiKey | None:
        """The key a live token acts for; None when unknown, expired or its key is revoked."""
        digest = _digest(secret)
        with self._sessions() as db:
            found = db.execute(
                select(BrowserTokenRow.digest, ApiKeyRow, BrowserTokenRow.expires_at)
                .join(ApiKeyRow, ApiKeyRow.id == BrowserTokenRow.key_id)
                .where(BrowserTokenRow.digest == digest, BrowserTokenRow.expires_at > self._now())
            ).first()
        if found is None:
            return None
        stored_digest, row, expires_at = found
        if row.revoked_at is not None or not hmac.compare_digest(stored_digest, digest):
            return None
        if expires_at.tzinfo is None:  # SQLite hands back naive UTC
            expires_at = expires_at.replace(tzinfo=UTC)
        return replace(_key(row), token_id=stored_digest, token_expires_at=expires_at)

    def list_keys(self) -> list[ApiKey]:
        with self._sessions() as db:
            seconds = dict(
                db.execute(
                    select(UsageRow.key_id, func.sum(UsageRow.audio_seconds)).group_by(
                        UsageRow.key_id
                    )
                ).all()
            )
            rows = db.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)).all()
            return [_key(r, float(seconds.get(r.id) or 0.0)) for r in rows]

    def active_key_count(self) -> int:
        with self._sessions() as db:
            return (
                db.scalar(
                    select(func.count())
                    .select_from(ApiKeyRow)
                    .where(ApiKeyRow.revoked_at.is_(None))
                )
                or 0
            )

    def revoke_key(self, key_id: int) -> bool:
        """Revoke an active key and delete every token it minted (they never come back,
        even if the key is enabled again); False if there is no such active key."""
        with self._sessions.begin() as db:
            row = db.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = self._now()
            db.execute(delete(BrowserTokenRow).where(BrowserTokenRow.key_id == key_id))
            return True

    def enable_key(self, key_id: int) -> bool:
        """Make a revoked key active again (the operator's explicit `keys enable`); False if
        there is no such revoked key."""
        with self._sessions.begin() as db:
            row = db.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is None:
                return False
            row.revoked_at = None
            return True

    def record_usage(
        self,
        *,
        key_id: int,
        session_id: str,
        endpoint: str,
        audio_seconds: float,
        started_at: datetime,
        external_session_id: str | None = None,
        ended_at: datetime | None = None,  # default: now (a queued record keeps its own)
    ) -> None:
        with self._sessions.begin() as db:
            db.add(
                UsageRow(
                    key_id=key_id,
                    session_id=session_id,
                    external_session_id=external_session_id,
                    endpoint=endpoint,
                    audio_seconds=round(audio_seconds, 3),
                    started_at=started_at,
                    ended_at=ended_at or self._now(),
                )
            )

    def usage_seconds(self, key_id: int) -> float:
        with self._sessions() as db:
            total = db.scalar(
                select(func.sum(UsageRow.audio_seconds)).where(UsageRow.key_id == key_id)
            )
        return float(total or 0.0)


def _key(row: ApiKeyRow, audio_seconds: float = 0.0) -> ApiKey:
    return ApiKey(row.id, row.name, row.hint, row.created_at, row.revoked_at, audio_seconds)
