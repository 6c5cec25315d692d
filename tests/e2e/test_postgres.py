"""Keys and usage in PostgreSQL (Debian's server, started for the test on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.audio import Clip, pcm16
from tests.support.client import chunks, play
from tests.support.server import keys_list, running_server

pytestmark = pytest.mark.e2e


def test_keys_and_usage_in_postgres(postgres_url: str, tmp_path: Path, clips: list[Clip]) -> None:
    clip = clips[4]
    with running_server(tmp_path, database_url=postgres_url) as server:
        got = play(
            server,
            "model=pulse&language=en",
            [*chunks(pcm16(clip.audio)), {"type": "close_stream"}],
        )
        assert got.close_code == 1000 and "amiable" in got.final_text.lower()
        listing, audio_seconds = keys_list(server)
    assert audio_seconds >= clip.audio.size / 16000
    assert server.key not in listing
