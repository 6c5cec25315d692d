"""The Python client library against the real server: streams of real recordings, finalize
and close semantics, REST, the blocking facade, typed refusals, browser tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pulse_stt.client import (
    AsyncPulseClient,
    AuthenticationError,
    FileOptions,
    ParameterError,
    PulseClient,
    PulseConnectionError,
    SpeechEvent,
    StreamOptions,
    Transcription,
    file_frames,
)
from tests.support.audio import Clip, encode_file, join, pcm16, silence, wav_bytes, write_wav
from tests.support.server import Server

pytestmark = pytest.mark.e2e

EN = StreamOptions(language="en", word_timestamps=True)


def _finals(messages: list[object]) -> list[Transcription]:
    return [m for m in messages if isinstance(m, Transcription) and m.is_final]


def _text(finals: list[Transcription]) -> str:
    return " ".join(f.transcript for f in finals if f.transcript)


def test_async_stream_of_a_file_yields_accurate_finals_and_ends_after_is_last(
    server: Server, clips: list[Clip], tmp_path: Path
) -> None:
    clip = clips[0]
    path = tmp_path / "clip.wav"
    write_wav(clip.audio, 16000, path)

    async def run() -> list[object]:
        client = AsyncPulseClient(server.http, server.key)
        options = StreamOptions(language="en", word_timestamps=True, vad_events=True)
        return [m async for m in client.stream(file_frames(path), options)]

    messages = asyncio.run(run())
    finals = _finals(messages)
    assert clip.matches(_text(finals), 0.1), _text(finals)
    last = messages[-1]
    assert isinstance(last, Transcription) and last.is_last and last.is_final
    assert sum(1 for m in messages if isinstance(m, Transcription) and m.is_last) == 1
    assert len({m.session_id for m in messages if isinstance(m, Transcription)}) == 1
    words = [w for f in finals for w in f.words]
    assert words and all(0 <= w.start <= w.end <= clip.audio.size / 16000 + 0.5 for w in words)
    assert " ".join(w.word for w in words) == _text(finals)
    assert any(isinstance(m, SpeechEvent) and m.started for m in messages)


def test_finalize_mid_stream_gives_one_final_and_the_stream_stays_open(
    server: Server, clips: list[Clip]
) -> None:
    first, second = clips[1], clips[4]

    async def run() -> tuple[Transcription, Transcription, Transcription, list[object]]:
        client = AsyncPulseClient(server.http, server.key)
        options = StreamOptions(language="en", eou_timeout_ms=5000)
        async with client.connect(options) as stream:
            collected: list[object] = []

            async def collect() -> None:
                async for message in stream:
                    collected.append(message)

            reader = asyncio.create_task(collect())
            await stream.send(pcm16(join(first.audio, silence(0.3))))
            turn_one = await stream.finalize()
            assert not stream.closed
            await stream.send(pcm16(join(second.audio, silence(0.3))))
            turn_two = await stream.finalize()
            last = await stream.close()
            await reader
        assert turn_one is not None and turn_two is not None and last is not None
        return turn_one, turn_two, last, collected

    turn_one, turn_two, last, collected = asyncio.run(run())
    assert turn_one.from_finalize and turn_one.is_final and not turn_one.is_last
    assert turn_two.from_finalize and not turn_two.is_last
    assert first.matches(turn_one.transcript, 0.15), turn_one.transcript
    assert second.matches(turn_two.transcript, 0.15), turn_two.transcript
    assert last.is_last
    # the iterating task saw the same finals, in order, and then the end
    from_finalize = [m for m in _finals(collected) if m.from_finalize]
    assert from_finalize == [turn_one, turn_two]
    assert collected[-1] == last


def test_close_flushes_held_audio_and_returns_after_is_last(
    server: Server, clips: list[Clip]
) -> None:
    clip = clips[2]

    async def run() -> tuple[Transcription | None, list[object]]:
        client = AsyncPulseClient(server.http, server.key)
        async with client.connect(StreamOptions(language="en")) as stream:
            await stream.send(pcm16(clip.audio))  # no pause, no finalize: all still open
            last = await stream.close()
            assert stream.closed
            rest = [m async for m in stream]
        return last, rest

    last, messages = asyncio.run(run())
    assert last is not None and last.is_last
    assert clip.matches(_text(_finals(messages)), 0.1)


def test_sync_client_rest_and_streaming(server: Server, clips: list[Clip], tmp_path: Path) -> None:
    clip = clips[3]
    mp3 = tmp_path / "clip.mp3"
    mp3.write_bytes(encode_file(clip.audio, "mp3", "libmp3lame", 44100, 2))
    progress: list[tuple[int, int | None]] = []
    with PulseClient(server.http, server.key) as client:
        result = client.transcribe_file(
            mp3,
            FileOptions(language="en", word_timestamps=True),
            progress=lambda sent, total: progress.append((sent, total)),
        )
        assert clip.matches(result.transcription, 0.1), result.transcription
        assert result.language == "en" and result.file_size == mp3.stat().st_size
        assert result.duration is not None and abs(result.duration - clip.audio.size / 16000) < 0.2
        assert " ".join(w.word for w in result.words) == result.transcription
        assert progress[-1] == (mp3.stat().st_size, mp3.stat().st_size)

        from_bytes = client.transcribe_file(mp3.read_bytes(), FileOptions(language="en"))
        assert from_bytes.transcription == result.transcription and not from_bytes.words

        messages = list(client.stream_file(mp3, StreamOptions(language="en")))
        assert clip.matches(_text(_finals(messages)), 0.1)
        assert isinstance(messages[-1], Transcription) and messages[-1].is_last

        with client.connect(StreamOptions(language="en")) as stream:
            stream.send(pcm16(join(clip.audio, silence(0.3))))
            final = stream.finalize()
            assert final is not None and final.from_finalize
            assert clip.matches(final.transcript, 0.1)
            last = stream.close()
            assert last is not None and last.is_last


def test_breaking_out_of_a_sync_stream_releases_the_connection(
    server: Server, clips: list[Clip]
) -> None:
    with PulseClient(server.http, server.key) as client:
        audio = pcm16(join(*(c.audio for c in clips)))
        for message in client.stream([audio[i : i + 3200] for i in range(0, len(audio), 3200)]):
            if isinstance(message, Transcription) and message.transcript:
                break
        # the client is still usable afterwards
        result = client.transcribe_file(wav_bytes(clips[1].audio), FileOptions(language="en"))
        assert clips[1].matches(result.transcription, 0.1)


def test_a_bad_key_is_an_authentication_error(server: Server, clips: list[Clip]) -> None:
    with PulseClient(server.http, "pstt_not_a_real_key") as client:
        with pytest.raises(AuthenticationError) as rest:
            client.transcribe_file(wav_bytes(clips[1].audio))
        assert rest.value.status_code == 401 and "Authorization" in rest.value.message
        with pytest.raises(AuthenticationError), client.connect():
            pass


def test_a_bad_parameter_is_a_parameter_error_naming_it(server: Server, clips: list[Clip]) -> None:
    with PulseClient(server.http, server.key) as client:
        with (
            pytest.raises(ParameterError) as streaming,
            client.connect(StreamOptions(extra={"language": "klingon"})),
        ):
            pass
        assert streaming.value.param == "language" and streaming.value.status_code == 400
        assert streaming.value.allowed and "en" in streaming.value.allowed
        with pytest.raises(ParameterError) as rest:
            client.transcribe_file(
                wav_bytes(clips[1].audio), FileOptions(extra={"diarize": "maybe"})
            )
        assert rest.value.param == "diarize"


def test_an_unreachable_server_is_a_connection_error(server: Server) -> None:
    with PulseClient("http://127.0.0.1:9", server.key) as client:
        with pytest.raises(PulseConnectionError, match=r"127\.0\.0\.1:9"), client.connect():
            pass
        with pytest.raises(PulseConnectionError, match=r"127\.0\.0\.1:9"):
            client.transcribe_file(b"RIFF")


def test_a_browser_token_works_in_place_of_the_key(server: Server, clips: list[Clip]) -> None:
    with PulseClient(server.http, server.key) as client:
        token = client.create_token(ttl_s=60)
    assert token.token and token.token != server.key and 0 < token.expires_in <= 60
    with PulseClient(server.http, token.token) as browser_like:
        result = browser_like.transcribe_file(wav_bytes(clips[1].audio), FileOptions())
    assert clips[1].matches(result.transcription, 0.1)
