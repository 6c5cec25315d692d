"""`pulse-stt transcribe` and `pulse-stt stream` run as a user runs them (subprocesses)
against the real server with real recordings: output shapes checked by independent SRT and
WebVTT parsers, words against the reference transcripts, real-time pacing, Ctrl-C."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import srt
import webvtt

from tests.support.audio import Clip, encode_file, join, silence, wer, write_wav
from tests.support.server import Server

pytestmark = pytest.mark.e2e

FAKE_SOUNDDEVICE = Path(__file__).parents[1] / "fixtures" / "fake_sounddevice"
TAG = re.compile(r"<(\d\d):(\d\d):(\d\d)\.(\d{3})>")
TIME = re.compile(r"(\d\d):(\d\d):(\d\d)\.(\d{3})")


def pulse_stt(
    server: Server, *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulse_stt", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PULSE_STT_URL": server.http, "PULSE_STT_API_KEY": server.key}
        | (env or {}),
    )


@pytest.fixture(scope="module")
def speech(clips: list[Clip], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Three real sentences with pauses, as an MP3 (18 s)."""
    audio = join(clips[0].audio, silence(1.0), clips[1].audio, silence(1.0), clips[3].audio)
    path = tmp_path_factory.mktemp("cli") / "speech.mp3"
    path.write_bytes(encode_file(audio, "mp3", "libmp3lame", 44100, 1))
    return path, " ".join((clips[0].text, clips[1].text, clips[3].text))


def _seconds(match: re.Match[str]) -> float:
    h, m, s, ms = (int(g) for g in match.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def _clock(text: str) -> float:
    match = TIME.fullmatch(text)
    assert match, text
    return _seconds(match)


def test_transcribe_srt_over_rest(server: Server, speech: tuple[Path, str]) -> None:
    path, reference = speech
    done = pulse_stt(server, "transcribe", str(path), "--format", "srt", "--progress")
    assert done.returncode == 0, done.stderr
    subtitles = list(srt.parse(done.stdout))
    assert [s.index for s in subtitles] == list(range(1, len(subtitles) + 1))
    assert len(subtitles) >= 3
    assert re.match(r"1\n00:00:\d\d,\d{3} --> 00:00:\d\d,\d{3}\n", done.stdout)
    text = " ".join(s.content.replace("\n", " ") for s in subtitles)
    assert wer(reference, text) <= 0.1, text
    for previous, cue in itertools.pairwise(subtitles):
        assert previous.end <= cue.start
    for cue in subtitles:
        lines = cue.content.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines)
        assert (cue.end - cue.start).total_seconds() <= 6.0 + 0.8
    assert subtitles[-1].end.total_seconds() <= 18.5
    assert "100%" in done.stderr  # --progress: the upload bar ran to the end


def test_transcribe_vtt_over_the_stream(server: Server, speech: tuple[Path, str]) -> None:
    path, reference = speech
    done = pulse_stt(server, "transcribe", str(path), "--mode", "stream", "--format", "vtt")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("WEBVTT\n\n")
    captions = list(webvtt.from_buffer(io.StringIO(done.stdout)))
    text = " ".join(c.text.replace("\n", " ") for c in captions)
    assert wer(reference, text) <= 0.1, text
    tagged = 0
    for caption in captions:
        tags = [_seconds(m) for m in TAG.finditer(caption.raw_text)]
        tagged += len(tags)
        bounds = [_clock(caption.start), *tags, _clock(caption.end)]
        assert all(a < b for a, b in itertools.pairwise(bounds)), caption.raw_text
    assert tagged >= len(text.split()) - 2 * len(captions)  # every word but each cue's first


def test_transcribe_json_over_rest_has_the_server_shape_and_word_timings(
    server: Server, speech: tuple[Path, str]
) -> None:
    path, reference = speech
    done = pulse_stt(server, "transcribe", str(path), "--format", "json", "--language", "en")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["status"] == "success" and body["language"] == "en"
    assert wer(reference, body["transcription"]) <= 0.1
    assert " ".join(w["word"] for w in body["words"]) == body["transcription"]
    assert body["metadata"]["fileSize"] == path.stat().st_size


def test_transcribe_several_files_as_text_into_a_directory(
    server: Server, clips: list[Clip], tmp_path: Path
) -> None:
    inputs = []
    for clip in clips[1:3]:
        inputs.append(tmp_path / f"{clip.name}.wav")
        write_wav(clip.audio, 16000, inputs[-1])
    out = tmp_path / "out"
    done = pulse_stt(server, "transcribe", *map(str, inputs), "-o", str(out), "--mode", "stream")
    assert done.returncode == 0, done.stderr
    for clip in clips[1:3]:
        text = (out / f"{clip.name}.txt").read_text()
        assert clip.matches(text, 0.1), text


def test_a_refused_key_and_an_absent_server_exit_1_saying_why(
    server: Server, speech: tuple[Path, str]
) -> None:
    path, _ = speech
    refused = pulse_stt(server, "transcribe", str(path), "--key", "pstt_wrong")
    assert refused.returncode == 1 and "refused the API key" in refused.stderr
    absent = pulse_stt(server, "stream", str(path), "--url", "http://127.0.0.1:9")
    assert absent.returncode == 1 and "Is the server running" in absent.stderr
    bad_param = pulse_stt(server, "transcribe", str(path), "--language", "xx")
    assert bad_param.returncode == 1 and "'language'" in bad_param.stderr


def test_an_undecodable_file_is_reported_and_the_others_still_transcribed(
    server: Server, clips: list[Clip], tmp_path: Path
) -> None:
    junk, good = tmp_path / "junk.wav", tmp_path / "good.wav"
    junk.write_bytes(b"this is not audio at all" * 100)
    write_wav(clips[1].audio, 16000, good)
    for mode in ("rest", "stream"):
        done = pulse_stt(server, "transcribe", str(junk), str(good), "--mode", mode)
        assert done.returncode == 1, done.stderr
        assert str(junk) in done.stderr and "audio" in done.stderr
        assert f"==> {good} <==" in done.stdout
        assert clips[1].matches(done.stdout.split(f"==> {good} <==")[1], 0.1)


def test_stream_realtime_paces_the_file_and_prints_finals(
    server: Server, clips: list[Clip], tmp_path: Path
) -> None:
    clip = clips[1]
    path = tmp_path / "short.wav"
    write_wav(clip.audio, 16000, path)
    started = time.monotonic()
    done = pulse_stt(server, "stream", str(path), "--realtime")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert took >= clip.audio.size / 16000  # paced: not sent faster than it plays
    assert clip.matches(done.stdout, 0.1), done.stdout
    assert "\r" not in done.stdout  # not a terminal: finals only, one per line


def test_stream_mic_until_ctrl_c(server: Server, clips: list[Clip], tmp_path: Path) -> None:
    """The microphone path with a fake sounddevice that plays a real recording (there is no
    sound card here): live captions, then Ctrl-C ends the stream and the last final still
    arrives."""
    clip = clips[3]
    wav = tmp_path / "mic.wav"
    write_wav(clip.audio, 16000, wav)
    env = {
        **os.environ,
        "PULSE_STT_URL": server.http,
        "PULSE_STT_API_KEY": server.key,
        "PYTHONPATH": os.pathsep.join([str(FAKE_SOUNDDEVICE), os.environ.get("PYTHONPATH", "")]),
        "FAKE_MIC_WAV": str(wav),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "pulse_stt", "stream", "--mic", "--partials"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        time.sleep(clip.audio.size / 16000 + 2.0)  # the speech, then the mic's silence
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "stopping" in stderr
    finals = [line.removeprefix("[final] ") for line in stdout.splitlines() if "[final]" in line]
    assert clip.matches(" ".join(finals), 0.1), stdout
    assert any(line.startswith("[partial] ") for line in stdout.splitlines())
