"""Whole files over REST (`POST /waves/v1/stt/?model=...`), with upload progress.

The body is streamed from the file in chunks (never read whole into memory) with its
Content-Length declared, so the server can refuse an oversized upload at once.
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
import os
from collections.abc import AsyncIterator, Callable
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from pulse_stt.client.endpoints import public_url
from pulse_stt.client.errors import PulseConnectionError, PulseError, error_from_response
from pulse_stt.client.messages import BrowserToken, FileResult

ProgressCallback = Callable[[int, int | None], None]  # (bytes sent, total bytes or None)
UPLOAD_CHUNK = 256 * 1024


def _open(file: str | PathLike[str] | bytes | BinaryIO) -> tuple[BinaryIO, int | None, str, bool]:
    """(binary file object, size or None, content type, whether we opened it)."""
    if isinstance(file, bytes | bytearray | memoryview):
        data = bytes(file)
        return io.BytesIO(data), len(data), "application/octet-stream", True
    if isinstance(file, str | PathLike):
        path = Path(file)
        handle = open(path, "rb")  # noqa: SIM115 (closed by the caller)
        return handle, path.stat().st_size, _content_type(path.name), True
    size: int | None = None
    try:
        size = os.fstat(file.fileno()).st_size - file.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        size = None
    return file, size, _content_type(getattr(file, "name", "") or ""), False


def _content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name)
    # The server detects the container from the bytes; the type only has to say "audio"
    # (and never application/json, which means a {"url": ...} body).
    if guessed and (guessed.startswith(("audio/", "video/"))):
        return guessed
    return "application/octet-stream"


async def _chunks(
    handle: BinaryIO, total: int | None, progress: ProgressCallback | None
) -> AsyncIterator[bytes]:
    sent = 0
    while chunk := await asyncio.to_thread(handle.read, UPLOAD_CHUNK):
        sent += len(chunk)
        yield chunk
        if progress is not None:
            progress(sent, total)


async def post_file(
    url: str,
    headers: dict[str, str],
    file: str | PathLike[str] | bytes | BinaryIO,
    *,
    timeout: float,
    progress: ProgressCallback | None = None,
) -> FileResult:
    handle, size, content_type, owned = await asyncio.to_thread(_open, file)
    try:
        request_headers = {**headers, "Content-Type": content_type}
        if size is not None:
            request_headers["Content-Length"] = str(size)
        return await _post(
            url, request_headers, content=_chunks(handle, size, progress), timeout=timeout
        )
    finally:
        if owned:
            handle.close()


async def post_url(
    url: str, headers: dict[str, str], audio_url: str, *, timeout: float
) -> FileResult:
    return await _post(url, headers, json_body={"url": audio_url}, timeout=timeout)


async def post_token(url: str, headers: dict[str, str], ttl_s: int | None) -> BrowserToken:
    body = {} if ttl_s is None else {"ttl_s": ttl_s}
    return BrowserToken.from_dict(await _post_json(url, headers, json_body=body, timeout=30))


async def _post(
    url: str,
    headers: dict[str, str],
    *,
    timeout: float,
    content: AsyncIterator[bytes] | None = None,
    json_body: dict[str, Any] | None = None,
) -> FileResult:
    data = await _post_json(url, headers, timeout=timeout, content=content, json_body=json_body)
    return FileResult.from_dict(data)


async def _post_json(
    url: str,
    headers: dict[str, str],
    *,
    timeout: float,
    content: AsyncIterator[bytes] | None = None,
    json_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    public = public_url(url)
    limits = httpx.Timeout(timeout, connect=min(timeout, 10.0))
    try:
        async with httpx.AsyncClient(timeout=limits) as http:
            response = await http.post(url, headers=headers, content=content, json=json_body)
    except httpx.TimeoutException as exc:
        raise PulseConnectionError(f"{public} did not answer within {timeout} s ({exc!r})") from exc
    except httpx.HTTPError as exc:
        raise PulseConnectionError(
            f"could not reach {public}: {exc or type(exc).__name__}"
        ) from exc
    if response.status_code != 200:
        raise error_from_response(response.status_code, response.content, url=public)
    try:
        data = response.json()
    except ValueError:
        raise PulseError(
            f"{public} answered 200 with a body that is not JSON: {response.text[:200]!r}",
            status_code=200,
        ) from None
    if not isinstance(data, dict):
        raise PulseError(f"{public} answered 200 with JSON that is not an object", status_code=200)
    return data
