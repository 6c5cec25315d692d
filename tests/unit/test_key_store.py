"""The key store's guarantees under abuse (issue 20, rows 1 and 9): a revocation sticks
until an operator re-enables the key, a revoked key's tokens stay dead, operator-chosen
keys have a minimum length, the hint gives nothing of a key away, and the SQLite file is
private."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulse_stt.store.db import MIN_KEY_CHARS, Store

OPERATOR_KEY = "pstt_configured_0123456789abcdef"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "k.db"  # the parent folder does not exist yet


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{db_path}")
    yield s
    s.close()


# -- row 1: a revocation is permanent until an operator re-enables the key ----------------


def test_ensure_key_does_not_undo_a_revocation(store: Store) -> None:
    key = store.ensure_key("env", OPERATOR_KEY)
    assert store.revoke_key(key.id)
    again = store.ensure_key("env", OPERATOR_KEY)  # what `serve` does on every start
    assert again.id == key.id
    assert again.revoked_at is not None  # the caller sees it is revoked
    assert store.authenticate(OPERATOR_KEY) is None
    assert store.active_key_count() == 0
    assert len(store.list_keys()) == 1


def test_revocation_survives_a_restart_on_the_same_database(db_path: Path) -> None:
    first = Store(f"sqlite:///{db_path}")
    key = first.ensure_key("env", OPERATOR_KEY)
    token = first.mint_token(key.id, 300)
    assert first.revoke_key(key.id)
    first.close()
    second = Store(f"sqlite:///{db_path}")
    try:
        second.ensure_key("env", OPERATOR_KEY)
        assert second.authenticate(OPERATOR_KEY) is None
        assert second.authenticate_token(token.secret) is None
    finally:
        second.close()


def test_only_an_explicit_enable_brings_a_key_back_and_not_its_old_tokens(store: Store) -> None:
    key, secret = store.create_key("alice")
    old_token = store.mint_token(key.id, 300)
    assert store.revoke_key(key.id)
    assert store.authenticate_token(old_token.secret) is None
    assert store.enable_key(key.id) is True
    assert store.enable_key(key.id) is False  # already active
    assert store.enable_key(9999) is False
    found = store.authenticate(secret)
    assert found is not None and found.id == key.id and found.revoked_at is None
    # Tokens minted before the revocation stay dead; new ones work.
    assert store.authenticate_token(old_token.secret) is None
    new_token = store.mint_token(key.id, 300)
    assert store.authenticate_token(new_token.secret) is not None


# -- row 9: minimum length, hints, file modes -----------------------------------------------


@pytest.mark.parametrize("secret", ["", "short", "pstt_" + "x" * (MIN_KEY_CHARS - 6)])
def test_operator_chosen_keys_have_a_minimum_length(store: Store, secret: str) -> None:
    assert MIN_KEY_CHARS >= 20
    with pytest.raises(ValueError, match=f"at least {MIN_KEY_CHARS} characters"):
        store.ensure_key("env", secret)
    with pytest.raises(ValueError, match=f"at least {MIN_KEY_CHARS} characters"):
        store.create_key("chosen", secret)
    assert store.list_keys() == []
    store.ensure_key("env", "k" * MIN_KEY_CHARS)  # the minimum itself is fine


def _revealed(hint: str, secret: str) -> int:
    """The most characters of `secret` (beyond the public prefix) that `hint` shows."""
    body = secret.removeprefix("pstt_")
    return max(
        (n for n in range(1, len(body) + 1) for i in range(len(body) - n + 1)
         if body[i : i + n] in hint),
        default=0,
    )  # fmt: skip


def test_hints_reveal_at_most_four_characters_of_a_key(store: Store) -> None:
    random_key, random_secret = store.create_key("alice")
    operator_key = store.ensure_key("env", OPERATOR_KEY)
    plain_key = store.ensure_key("env2", "correct-horse-battery-staple")
    for key, secret in (
        (random_key, random_secret),
        (operator_key, OPERATOR_KEY),
        (plain_key, "correct-horse-battery-staple"),
    ):
        assert _revealed(key.hint, secret) <= 4, (key.hint, secret)
        assert len(key.hint) <= 16
    # A generated key is recognisable by its last four characters...
    assert random_key.hint == "pstt_…" + random_secret[-4:]
    # ...an operator-chosen one by a short digest the operator can compute.
    digest = hashlib.sha256(b"correct-horse-battery-staple").hexdigest()
    assert plain_key.hint == "#" + digest[:8]
    assert {k.hint for k in store.list_keys()} == {
        random_key.hint,
        operator_key.hint,
        plain_key.hint,
    }


def test_hints_stored_in_clear_by_older_versions_are_rewritten(db_path: Path) -> None:
    first = Store(f"sqlite:///{db_path}")
    key, secret = first.create_key("alice")
    first.close()
    with sqlite3.connect(db_path) as conn:  # what an older version stored
        conn.execute("UPDATE api_keys SET hint = ? WHERE id = ?", (secret[:10], key.id))
    second = Store(f"sqlite:///{db_path}")
    try:
        (listed,) = second.list_keys()
        assert listed.hint == "#" + hashlib.sha256(secret.encode()).hexdigest()[:8]
    finally:
        second.close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT hint FROM api_keys").fetchone()[0] == listed.hint
    assert secret[5:10].encode() not in db_path.read_bytes()


def test_the_database_file_and_its_new_folder_are_private(store: Store, db_path: Path) -> None:
    store.create_key("alice")
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700


def test_an_existing_database_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    first = Store(f"sqlite:///{path}")
    first.close()
    os.chmod(path, 0o644)  # as older versions left it
    second = Store(f"sqlite:///{path}")
    second.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_permissive_umask_still_gives_a_private_file(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "new" / "u.db"
        Store(f"sqlite:///{path}").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


# -- the CLI and the settings ----------------------------------------------------------------


def test_a_short_configured_key_is_a_settings_error() -> None:
    from pydantic import ValidationError

    from pulse_stt.config import Settings

    with pytest.raises(ValidationError, match=f"at least {MIN_KEY_CHARS} characters"):
        Settings(api_key="tooshort")
    assert Settings(api_key=OPERATOR_KEY).api_key is not None


def test_cli_refuses_a_short_key_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pulse_stt.cli import main

    monkeypatch.setenv("PULSE_STT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PULSE_STT_API_KEY", "hunter2")
    assert main(["keys", "list"]) == 2
    assert f"at least {MIN_KEY_CHARS} characters" in capsys.readouterr().err


def test_cli_revoke_then_enable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pulse_stt.cli import main

    monkeypatch.setenv("PULSE_STT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PULSE_STT_API_KEY", raising=False)
    assert main(["keys", "create", "--name", "app"]) == 0
    secret = capsys.readouterr().out.splitlines()[1]
    assert main(["keys", "revoke", "1"]) == 0
    assert main(["keys", "enable", "1"]) == 0
    assert main(["keys", "enable", "1"]) == 1  # not revoked
    assert "no revoked key with id 1" in capsys.readouterr().err
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert "pstt_…" + secret[-4:] in listed and "active" in listed
    assert secret[5:10] not in listed
