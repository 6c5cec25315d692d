"""Reading request bodies and JSON from clients, the same way on every endpoint.

Small bodies (control JSON, token requests) are read whole with `read_body`. Audio bodies
(REST uploads and fetched URLs) go to a `SpooledBody`: in memory up to `SPOOL_BYTES`, in
an anonymous temporary file past that, so the server's memory does not grow with the
upload. `UploadBudget` bounds the bytes of all such bodies held at once.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any, BinaryIO, cast

from starlette.requests import Request

# Above this, an audio body moves from memory to a temporary file (system temp dir: TMPDIR).
SPOOL_BYTES = 2 << 20


class BodyTooLargeError(Exception):
    """The body (declared or sent) is over the endpoint's limit."""


class UploadBudgetError(Exception):
    """Taking this body would put the server over `max_upload_bytes_in_flight`."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused as soon as it is over `limit` bytes (by its Content-Length
    before any of it is read, or while it streams in)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError
    return bytes(body)


class UploadBudget:
    """Bytes of audio bodies this server holds at once (uploads being received, waiting
    for or in transcription, in memory or in temporary files). Used from the event loop
    only, so a plain counter. `limit` 0 = unlimited."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> None:
        if self.limit and self.held + size > self.limit:
            raise UploadBudgetError
        self.held += size

    def give(self, size: int) -> None:
        self.held -= size


class SpooledBody:
    """An audio body as it arrives: written in chunks, at most `limit` bytes, charged to
    `budget` as it grows; then read back as a file (`rewound()`). `close()` deletes the
    temporary file and gives the bytes back to the budget: call it exactly once."""

    def __init__(self, limit: int, budget: UploadBudget, spool_bytes: int = SPOOL_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self._budget = budget
        self._charged = 0
        self._file = cast(
            BinaryIO,
            tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed by close())
                max_size=spool_bytes, prefix="pulse-stt-upload-"
            ),
        )

    def reserve(self, size: int) -> None:
        """Charge `size` bytes up front (a declared Content-Length): a body the budget
        cannot take is refused before any of it is read."""
        if size > self._charged:
            self._budget.take(size - self._charged)
            self._charged = size

    def write(self, chunk: bytes) -> None:
        if self.size + len(chunk) > self.limit:
            raise BodyTooLargeError
        self.reserve(self.size + len(chunk))
        self._file.write(chunk)
        self.size += len(chunk)

    def rewound(self) -> BinaryIO:
        """The body as a file, at its start (the audio decoder reads and seeks it)."""
        self._file.seek(0)
        return self._file

    def read_all(self) -> bytes:
        return self.rewound().read()

    def close(self) -> None:
        self._file.close()
        self._budget.give(self._charged)
        self._charged = 0

    def __enter__(self) -> SpooledBody:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


async def spool_body(request: Request, body: SpooledBody) -> None:
    """Stream the request's body into `body`; refused as soon as it is over its limit (by
    Content-Length before any of it is read, or while it streams in) or over the budget."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        if int(declared) > body.limit:
            raise BodyTooLargeError
        body.reserve(int(declared))
    async for chunk in request.stream():
        body.write(chunk)


def loads_json(data: str | bytes) -> Any:
    """`json.loads`, with every way client JSON can be bad raised as ValueError: nesting
    deeper than Python's stack raises RecursionError, which is not one."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
