"""REST audio bodies are spooled, not held in memory, and the bytes held at once are
bounded (issue 20 row 3). The real app on a stand-in engine (tests/unit/test_rest_fuzz.py);
the 300 MiB upload with the server's RSS watched is in tests/e2e/test_hostile_input.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pulse_stt.api.bodies import BodyTooLargeError, SpooledBody, UploadBudget, UploadBudgetError
from pulse_stt.api.context import ServerContext
from tests.support.audio import tone, wav_bytes
from tests.unit.test_rest_fuzz import AUTH, app_client

STT = "/waves/v1/stt/?model=pulse&language=en"
WAV = wav_bytes(tone(2.0))  # 64 kB


def uploads(client: TestClient) -> UploadBudget:
    ctx: ServerContext = client.app.state.ctx  # type: ignore[attr-defined]
    return ctx.uploads


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tmp_path, max_upload_bytes_in_flight=100_000) as test_client:
        yield test_client


def post(client: TestClient, body: bytes | Iterator[bytes]) -> dict[str, object]:
    response = client.post(STT, content=body, headers={**AUTH, "Content-Type": "audio/wav"})
    answer: dict[str, object] = response.json()
    answer["http"] = response.status_code
    answer["retry_after"] = response.headers.get("retry-after")
    return answer


def test_a_body_the_budget_cannot_take_is_a_503_with_retry_after(client: TestClient) -> None:
    assert post(client, WAV)["http"] == 200
    budget = uploads(client)
    assert budget.held == 0  # given back after the answer
    budget.take(60_000)  # other uploads in flight
    for body in (WAV, iter([WAV[:30_000], WAV[30_000:]])):  # declared length, then chunked
        answer = post(client, body)
        assert answer["http"] == 503 and answer["error"] == "server_full", answer
        assert answer["retry_after"] == "5" and "max_upload_bytes_in_flight" in str(
            answer["message"]
        )
        assert budget.held == 60_000
    budget.give(60_000)
    assert post(client, WAV)["http"] == 200 and budget.held == 0


def test_errors_give_the_budget_back(client: TestClient) -> None:
    budget = uploads(client)
    assert post(client, b"not audio at all")["error"] == "bad_audio"
    assert post(client, b"")["error"] == "empty_body"
    budget.limit = 0  # unlimited: the upload limit is what refuses the next one
    too_large = iter([bytes(200_000), bytes(200_000)])  # chunked: over 256 kB as it arrives
    assert post(client, too_large)["error"] == "too_large"
    assert budget.held == 0


def test_a_large_body_goes_to_a_temporary_file_and_reads_back_whole(tmp_path: Path) -> None:
    budget = UploadBudget(10 << 20)
    body = SpooledBody(8 << 20, budget, spool_bytes=1 << 20)
    block = bytes(range(256)) * 4096  # 1 MiB
    for _ in range(3):
        body.write(block)
    assert body.rewound().fileno() >= 0  # past 1 MiB: a real (anonymous) file
    assert body.size == 3 << 20 and budget.held == 3 << 20
    assert body.read_all() == block * 3
    body.close()
    assert budget.held == 0
    small = SpooledBody(8 << 20, budget, spool_bytes=1 << 20)
    small.write(b"RIFF")
    assert small.read_all() == b"RIFF" and budget.held == 4
    small.close()


def test_a_spooled_body_stops_at_its_limit_and_the_budget() -> None:
    budget = UploadBudget(1000)
    with SpooledBody(500, budget) as body:
        body.write(bytes(400))
        with pytest.raises(BodyTooLargeError):
            body.write(bytes(200))
        with SpooledBody(2000, budget) as other:
            with pytest.raises(UploadBudgetError):
                other.write(bytes(700))  # 400 + 700 > 1000
            other.write(bytes(600))
    assert budget.held == 0
