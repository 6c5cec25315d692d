"""Whole-file transcription: `POST /waves/v1/stt/?model=...` and `POST /waves/v1/pulse/get_text`."""

from __future__ import annotations

import asyncio
import email.message
import json
import logging
import posixpath
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse

from pulse_stt.api.admission import Refusal, Slot
from pulse_stt.api.auth import AuthRefusal, authorize
from pulse_stt.api.bodies import (
    BodyTooLargeError,
    SpooledBody,
    UploadBudgetError,
    loads_json,
    read_body,
    spool_body,
)
from pulse_stt.api.context import ServerContext
from pulse_stt.api.drain import unavailable_response
from pulse_stt.api.fetch import FetchError, FetchTooLargeError, fetch_url
from pulse_stt.api.params import ParamError, parse_file_params
from pulse_stt.api.schemas import FileStats, file_response, rest_error, store_unavailable_response
from pulse_stt.api.webhook import (
    DeliveryPolicy,
    DeliveryResult,
    deliver,
    log_delivery,
    webhook_payload,
)
from pulse_stt.audio.container import AudioTooLongError, iter_file_audio, iter_file_channels
from pulse_stt.audio.decode import AudioDecodeError
from pulse_stt.engine.scheduler import SchedulerClosedError
from pulse_stt.protocol import ErrorKind, FileParams, Webhook, WebhookOutcome
from pulse_stt.store.db import ApiKey
from pulse_stt.store.outage import StoreUnavailableError
from pulse_stt.stream.file import FileTranscription, transcribe_audio_chunks
from pulse_stt.text.itn import NemoInverseNormalizer
from pulse_stt.text.pipeline import TranscriptShaper

log = logging.getLogger(__name__)

REST_PATH = "/waves/v1/stt"
LEGACY_REST_PATH = "/waves/v1/pulse/get_text"
_MAX_JSON_BODY = 64 * 1024


@dataclass
class _RequestRecord:
    """What the request log line and the metrics say about one request."""

    key_id: int | None = None
    body_bytes: int = 0
    audio_s: float = 0.0
    transcript: str | None = None
    webhook: bool = False


async def file_endpoint(request: Request) -> JSONResponse:
    """Transcribe a file; every answer, refusals included, is counted and logged, and
    carries the request's `request_id` (body and `X-Request-ID` header)."""
    ctx: ServerContext = request.app.state.ctx
    request_id = str(uuid.uuid4())
    started = time.monotonic()
    record = _RequestRecord()
    try:
        response = await _transcribe_file(request, request_id, record)
    except Exception:  # a bug: logged with its traceback; the client gets a JSON 500
        log.exception("rest request failed", extra={"request_id": request_id})
        response = rest_error(
            500, ErrorKind.INTERNAL, "internal error; quote the request_id when reporting it."
        )
    response = _with_request_id(response, request_id)
    status = response.status_code
    error = _error_kind(response) if status >= 400 else None
    ctx.metrics.rest_request(status, error=error, audio_seconds=record.audio_s)
    fields: dict[str, object] = {
        "request_id": request_id,
        "path": request.url.path,
        "model": request.query_params.get("model"),
        "key_id": record.key_id,
        "status": status,
        "error": error,
        "bytes": record.body_bytes,
        "audio_s": round(record.audio_s, 3),
        "duration_s": round(time.monotonic() - started, 3),
    }
    if record.webhook:
        fields["webhook"] = True
    if ctx.settings.log_transcripts and record.transcript is not None:
        fields["transcript"] = record.transcript
    log.info("rest request", extra=fields)
    return response


def _with_request_id(response: JSONResponse, request_id: str) -> JSONResponse:
    """The answer with `request_id` in its JSON body (every body here is an object)."""
    try:
        body = json.loads(bytes(response.body))
    except ValueError:
        body = None
    if isinstance(body, dict) and "request_id" not in body:
        body["request_id"] = request_id
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        response = JSONResponse(body, status_code=response.status_code, headers=headers)
    response.headers["X-Request-ID"] = request_id
    return response


def _error_kind(response: JSONResponse) -> ErrorKind:
    """The `error` of an error answer, as the metrics count it."""
    try:
        return ErrorKind(json.loads(bytes(response.body))["error"])
    except (KeyError, TypeError, ValueError):  # every refusal names a kind: a bug if not
        log.warning("error answer without a known error kind: %s", response.status_code)
        return ErrorKind.INTERNAL


async def _transcribe_file(
    request: Request, request_id: str, record: _RequestRecord
) -> JSONResponse:
    ctx: ServerContext = request.app.state.ctx
    if ctx.drain.draining:  # shutting down: requests in flight finish, new ones are refused
        return unavailable_response()
    legacy = request.url.path.rstrip("/") == LEGACY_REST_PATH
    try:
        key = await authorize(ctx, request)  # failed logins counted and throttled per source
    except StoreUnavailableError:
        return store_unavailable_response()
    if isinstance(key, AuthRefusal):
        return key.response
    record.key_id = key.id
    try:
        params = parse_file_params(request.query_params, legacy_path=legacy)
        ctx.check_diarize(params.text.diarize)
    except ParamError as exc:
        return JSONResponse(exc.to_json(), status_code=400)
    # A slot per key and per server (429 / 503 with Retry-After), taken before the body is
    # read and held until the answer (webhook mode: until the delivery is over): REST
    # requests count as sessions (api/admission.py).
    admitted = ctx.admission.admit(key.id, ctx.engine_for(params.pro), token=key.token_id)
    if isinstance(admitted, Refusal):
        return admitted.response()
    job = _FileJob(ctx, key, params, legacy, request_id, record)
    handed_off = False
    audio: _Audio | JSONResponse | None = None
    try:
        audio = await _read_audio(request, ctx, record)
        if isinstance(audio, JSONResponse):
            return audio
        job.filename = audio.filename
        if params.webhook is not None:
            record.webhook = True
            ctx.webhooks.start(_webhook_job(job, audio.body, params.webhook, admitted), request_id)
            handed_off = True
            return JSONResponse({"status": "processing", "request_id": request_id})
        return await job.run(audio.body)
    finally:
        if not handed_off:
            admitted.release()
            if isinstance(audio, _Audio):
                audio.body.close()


@dataclass(frozen=True)
class _Audio:
    body: SpooledBody  # in memory when small, else a temporary file; the caller closes it
    filename: str | None


async def _read_audio(
    request: Request, ctx: ServerContext, record: _RequestRecord
) -> _Audio | JSONResponse:
    """The request's audio (its body, or the file at its JSON `url`), spooled to a
    temporary file past a few MB and charged to the server's upload budget; or the error
    answer."""
    body = SpooledBody(ctx.settings.max_upload_bytes, ctx.uploads)
    try:
        answer = await _spool_audio(request, ctx, record, body)
    except BaseException:
        body.close()
        raise
    if isinstance(answer, JSONResponse):
        body.close()
    return answer


async def _spool_audio(
    request: Request, ctx: ServerContext, record: _RequestRecord, body: SpooledBody
) -> _Audio | JSONResponse:
    limit = body.limit
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    filename = _disposition_filename(request.headers.get("content-disposition"))
    try:
        if content_type == "application/json":
            url = await _fetch_from_json(ctx, await read_body(request, _MAX_JSON_BODY), body)
            filename = posixpath.basename(unquote(urlsplit(url).path)) or None
        else:
            await spool_body(request, body)
    except BodyTooLargeError:
        return rest_error(413, ErrorKind.TOO_LARGE, f"the body is over the {limit} byte limit.")
    except UploadBudgetError:
        retry_after = ctx.settings.admission_retry_after_s
        refusal = rest_error(
            503,
            ErrorKind.SERVER_FULL,
            "this server holds as much uploaded audio as it may at once "
            f"(max_upload_bytes_in_flight); retry in {retry_after} s or send a smaller file.",
        )
        refusal.headers["Retry-After"] = str(retry_after)
        return refusal
    except FetchTooLargeError as exc:
        return rest_error(413, ErrorKind.TOO_LARGE, str(exc))
    except (FetchError, ValueError) as exc:
        return rest_error(400, ErrorKind.BAD_REQUEST, str(exc))
    record.body_bytes = body.size
    if not body.size:
        return rest_error(
            400,
            ErrorKind.EMPTY_BODY,
            'the request body is empty; send the audio file\'s bytes, or JSON {"url": "..."}.',
        )
    return _Audio(body, filename)


def _disposition_filename(header: str | None) -> str | None:
    """`filename` of a `Content-Disposition` request header, if the client sent one."""
    if not header:
        return None
    message = email.message.Message()
    message["content-disposition"] = header
    name = message.get_filename()
    return posixpath.basename(name.replace("\\", "/")) or None if name else None


@dataclass
class _FileJob:
    """One admitted request's transcription, answered in-line or delivered to a webhook."""

    ctx: ServerContext
    key: ApiKey
    params: FileParams
    legacy: bool
    request_id: str
    record: _RequestRecord
    filename: str | None = None

    async def run(self, audio: SpooledBody) -> JSONResponse:
        """Transcribe, record usage; the answer (200 body or error) a synchronous request
        gets."""
        ctx, params = self.ctx, self.params
        started_at = datetime.now(UTC)
        started = time.monotonic()
        engine = ctx.engine_for(params.pro)
        max_seconds = ctx.settings.max_file_audio_s
        try:
            result = await asyncio.to_thread(
                lambda: transcribe_audio_chunks(
                    iter_file_channels(
                        audio.rewound(),
                        max_channels=ctx.settings.max_channels,
                        max_seconds=max_seconds,
                    )
                    if params.multichannel
                    else iter_file_audio(audio.rewound(), max_seconds=max_seconds),
                    engine=engine,
                    params=params,
                    request_id=self.request_id,
                    vad_threshold=ctx.settings.vad_threshold,
                    max_utterance_s=ctx.settings.max_utterance_s,
                    speaker_encoder=ctx.speaker_encoder if params.text.diarize else None,
                )
            )
        except AudioTooLongError as exc:
            return rest_error(413, ErrorKind.TOO_LONG, str(exc))
        except AudioDecodeError as exc:
            return rest_error(400, ErrorKind.BAD_AUDIO, str(exc))
        except SchedulerClosedError:  # the engine stopped under this request: shutting down
            return unavailable_response()
        self.record.audio_s = result.duration
        await ctx.usage.record(  # queued if the store is unreachable
            key_id=self.key.id,
            session_id=self.request_id,
            endpoint=LEGACY_REST_PATH if self.legacy else REST_PATH,
            audio_seconds=result.duration,
            started_at=started_at,
        )
        body = await asyncio.to_thread(
            _response, result, params, audio.size, ctx.itn, started, self.filename
        )
        self.record.transcript = str(body["transcription"])
        return JSONResponse(body)


async def _webhook_job(job: _FileJob, audio: SpooledBody, webhook: Webhook, slot: Slot) -> None:
    """Webhook mode, in the background: transcribe on the shared engine (queued as file
    work, holding the request's admission slot), then deliver what a synchronous request
    would have got, errors included. Cancelled by shutdown: reported as aborted."""
    ctx = job.ctx
    started = time.monotonic()
    transcript = None
    try:
        try:
            answer = await job.run(audio)
        finally:
            audio.close()  # the audio is not needed for the delivery
            slot.release()
        ctx.metrics.file_audio(job.record.audio_s)
        body = _with_request_id(answer, job.request_id)
        payload = webhook_payload(json.loads(bytes(body.body)), webhook)
        if answer.status_code >= 400:
            ctx.metrics.error(_error_kind(answer))
        elif ctx.settings.log_transcripts:
            transcript = job.record.transcript
        result = await deliver(webhook, payload, DeliveryPolicy.from_settings(ctx.settings))
    except asyncio.CancelledError:
        result = DeliveryResult(WebhookOutcome.ABORTED, 0, None, "the server shut down")
        _report(job, webhook, result, started, transcript)
        raise
    except Exception as exc:  # a bug: the job is lost, but said so
        log.exception("webhook job failed", extra={"request_id": job.request_id})
        result = DeliveryResult(WebhookOutcome.FAILED, 0, None, type(exc).__name__)
    _report(job, webhook, result, started, transcript)


def _report(
    job: _FileJob,
    webhook: Webhook,
    result: DeliveryResult,
    started: float,
    transcript: str | None,
) -> None:
    job.ctx.metrics.webhook_delivery(result.outcome)
    log_delivery(
        result,
        request_id=job.request_id,
        webhook=webhook,
        started=started,
        transcript=transcript,
    )


async def _fetch_from_json(ctx: ServerContext, request_body: bytes, into: SpooledBody) -> str:
    """The JSON body's `url`, whose file is fetched into `into`."""
    try:
        payload = loads_json(request_body)
    except ValueError:
        raise FetchError('the JSON body is not valid JSON; send {"url": "https://..."}') from None
    if not isinstance(payload, dict) or not isinstance(payload.get("url"), str):
        raise FetchError('the JSON body must be {"url": "https://..."}')
    settings = ctx.settings
    await fetch_url(
        payload["url"],
        max_bytes=settings.max_upload_bytes,
        timeout_s=settings.url_timeout_s,
        allow_private=settings.allow_private_urls,
        write=into.write,
    )
    return str(payload["url"])


def _response(
    result: FileTranscription,
    params: FileParams,
    file_size: int,
    itn: NemoInverseNormalizer,
    started: float,
    filename: str | None,
) -> dict[str, object]:
    shaper = TranscriptShaper(params.text, itn=itn)
    transcripts = [
        shaper.shape(t.hypothesis, t.offset, final=True, speakers=t.speakers) for t in result.turns
    ]
    spoken = Counter[str]()
    for turn, transcript in zip(result.turns, transcripts, strict=True):
        if transcript.language:
            spoken[transcript.language] += len(turn.hypothesis.text)
    language = spoken.most_common(1)[0][0] if spoken else params.language.fixed
    return file_response(
        transcripts,
        options=params.text,
        language=language,
        duration=result.duration,
        file_size=file_size,
        stats=FileStats(
            processing_s=time.monotonic() - started,
            num_chunks=len(result.turns),
            filename=filename,
        ),
        channels=[t.channel for t in result.turns] if params.multichannel else None,
        num_channels=result.channels,
    )
