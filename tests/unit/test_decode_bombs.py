"""Compressed audio that expands without bound: the stream decoders and the session hand it
out a bounded piece at a time, lose nothing, and never wedge on damage."""

from __future__ import annotations

import io
import tracemalloc

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulse_stt.audio.decode import AudioDecodeError, make_decoder
from pulse_stt.audio.opus import MAX_DECODE_SAMPLES, OPUS_RATE, OggOpusDecoder
from pulse_stt.stream.session import SessionConfig, StreamSession
from tests.support.hostile_inputs import (
    PAGE_SAMPLES,
    drain,
    endless_ogg_packet,
    ogg_opus_bomb,
    ogg_page,
    opus_head_pages,
)


def real_ogg_opus(seconds: float = 2.0) -> bytes:
    """A real Ogg/Opus stream of a tone, from FFmpeg's muxer and libopus (through PyAV)."""
    rate = 48000
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)[None, :]
    out = io.BytesIO()
    with av.open(out, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


def test_an_ogg_bomb_is_decoded_a_bounded_piece_at_a_time() -> None:
    data, seconds = ogg_opus_bomb(60)  # 48 kB: 30 minutes of audio
    decoder = OggOpusDecoder()
    first = decoder.decode(data)
    assert first.size <= MAX_DECODE_SAMPLES + PAGE_SAMPLES
    assert decoder.has_backlog
    total, largest, errors = drain(decoder, b"")
    assert errors == []
    assert largest <= MAX_DECODE_SAMPLES + PAGE_SAMPLES
    assert (first.size + total) / OPUS_RATE == pytest.approx(seconds, abs=0.5)


def test_the_session_holds_a_bounded_amount_of_a_bomb() -> None:
    data, seconds = ogg_opus_bomb(40)  # 20 minutes of audio in 32 kB
    session = StreamSession(SessionConfig(encoding="ogg_opus", sample_rate=48000))
    tracemalloc.start()
    try:
        session.feed(data)
        pieces = 1
        while session.has_pending_audio:
            session.feed(b"")
            pieces += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert session.audio_seconds == pytest.approx(seconds, abs=0.5)
    assert pieces >= seconds / 40  # it did come in pieces
    # All of it as float32 would be 230 MB at 48 kHz; a piece is a few MB.
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MB"


def test_real_pages_before_damage_are_not_lost() -> None:
    real = real_ogg_opus(2.0)
    clean_total, _, _ = drain(OggOpusDecoder(), real)
    decoder = OggOpusDecoder()
    total, _, errors = drain(decoder, real + b"garbage that is no Ogg page at all" * 3)
    assert total == clean_total  # the audio before the damage came out
    assert len(errors) == 1 and "expected an Ogg page" in errors[0]


def test_a_page_of_another_ogg_version_does_not_wedge_the_decoder() -> None:
    real = real_ogg_opus(1.0)
    clean_total, _, _ = drain(OggOpusDecoder(), real)
    bad = ogg_page([b"\x00" * 10], 99, version=1)
    head_end = real.index(b"OggS", real.index(b"OpusTags"))  # the first audio page
    decoder = OggOpusDecoder()
    total, _, errors = drain(decoder, real[:head_end] + bad + real[head_end:])
    assert any("unsupported Ogg version" in e for e in errors)
    assert total == clean_total


def test_a_packet_that_never_ends_is_refused_before_it_grows_past_a_mib() -> None:
    decoder = OggOpusDecoder()
    errors: list[str] = []
    page = endless_ogg_packet(1)[len(opus_head_pages()) :]
    drain(decoder, opus_head_pages())
    for _ in range(40):  # 2.6 MB of one packet
        errors += drain(decoder, page)[2]
    assert len(errors) == 2 and "without ending" in errors[0]
    assert len(decoder._partial_packet) <= 2**20


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    frames=st.lists(
        st.one_of(
            st.binary(max_size=600),
            st.builds(
                lambda n, seq, version: ogg_page(
                    [bytes([(31 << 3) | 3, 6])] * n, seq, version=version
                ),
                st.integers(0, 255),
                st.integers(0, 5),
                st.sampled_from([0, 0, 0, 1]),
            ),
            st.just(opus_head_pages()),
        ),
        max_size=10,
    )
)
def test_any_stream_drains_and_ends(frames: list[bytes]) -> None:
    decoder = make_decoder("ogg_opus", 48000)
    for frame in frames:
        drain(decoder, frame)  # raises if the backlog never empties
        assert not decoder.has_backlog
    try:
        decoder.flush()
    except AudioDecodeError as exc:
        assert "Ogg page" in str(exc)


def test_a_wav_declaring_more_than_the_limit_is_refused_before_any_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 20 row 10: the header's declared duration decides, not the decoded audio."""
    from pulse_stt.audio import container
    from tests.support.hostile_inputs import low_rate_wav

    def no_decoding(*_: object, **__: object) -> None:
        raise AssertionError("decoding started")

    monkeypatch.setattr(container.av, "AudioResampler", no_decoding)
    bomb = low_rate_wav(1, bytes(range(256)) * 110)  # 28 kB, 7.8 hours
    with pytest.raises(container.AudioTooLongError, match="14400 s"):
        next(iter(container.iter_file_audio(bomb, max_seconds=14_400)))
    with pytest.raises(AudioDecodeError, match="1 Hz"):
        next(iter(container.iter_file_audio(bomb, max_seconds=100_000)))
