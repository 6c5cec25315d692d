"""Real recordings for end-to-end tests (pocketsphinx-testdata's LibriVox clips) and helpers."""

from __future__ import annotations

import io
import re
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
from faster_whisper.audio import decode_audio

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
RATE = 16_000


@dataclass(frozen=True)
class Clip:
    name: str
    audio: np.ndarray  # float32 mono 16 kHz
    text: str

    def matches(self, hypothesis: str, max_wer: float) -> bool:
        """Whether `hypothesis` transcribes this one clip: WER ≤ `max_wer`, or one word wrong.

        One word is 12.5 % of an 8-word clip, and *which* words an int8 model gets wrong
        depends on the CPU's kernels (on an AMD EPYC "ill disposed" came back as
        "ill-sposed"), so a bare WER bound below one word fails on some machines of the
        supported kind. One wrong word still tells a transcript from garbage (an empty or
        unrelated one gets every word wrong); a longer clip keeps its WER bound.
        """
        errors, words = word_errors(self.text, hypothesis)
        return errors <= max(1.0, max_wer * words)


def _sphinx_transcripts(path: Path) -> dict[str, str]:
    """A pocketsphinx transcription file: `<s> words </s> (file id)` per line."""
    refs: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.*)\)", line.strip())
        if m:
            refs[m.group(2)] = m.group(1).strip()
    return refs


def librivox_clips() -> list[Clip]:
    refs = _sphinx_transcripts(LIBRIVOX / "transcription")
    return [
        Clip(name, decode_audio(str(LIBRIVOX / f"{name}.wav"), sampling_rate=RATE), refs[name])
        for name in sorted(refs)
    ]


def card_clips() -> list[Clip]:
    """pocketsphinx-testdata's five short read card names (1-3.5 s, one speaker)."""
    folder = LIBRIVOX.parent / "cards"
    refs = _sphinx_transcripts(folder / "cards.transcription")
    return [
        Clip(f"cards-{n}", decode_audio(str(folder / f"{n}.wav"), sampling_rate=RATE), refs[n])
        for n in sorted(refs)
    ]


# Everyday sentences for espeak-ng: a larger accuracy set than the real recordings alone
# (the recordings come first in every figure; these add words, voices and speeds).
WER_SENTENCES = (
    "The quarterly report shows that revenue grew faster than expected in the northern region.",
    "Please schedule the follow up meeting for next Tuesday afternoon at the main office.",
    "She walked along the river until the sun went down behind the distant hills.",
    "Our support team will call you back as soon as an engineer becomes available.",
    "The package was delivered to the wrong address and had to be returned to the warehouse.",
    "Before you leave the building, make sure every window is closed and the alarm is set.",
    "He told the committee that the new bridge would open to traffic early next spring.",
    "I would like to change my flight to a later departure if there is still a seat available.",
    "The children built a small wooden boat and sailed it across the pond in the park.",
    "Most of the questions from the audience were about the cost of the new program.",
    "We need to replace the battery in the smoke detector before the end of the week.",
    "The doctor recommended more sleep, less coffee and a short walk after every meal.",
    "A strong wind blew through the valley and knocked down several old trees.",
    "The library will be closed on Monday while the heating system is being repaired.",
    "Can you send me the latest version of the contract so that I can review it tonight.",
    "The museum opened a new exhibition about the history of maps and navigation.",
    "After a long discussion, the board agreed to postpone the decision until next month.",
    "The train was delayed because of a signal failure just outside the city.",
    "My grandmother grew tomatoes, beans and potatoes in the garden behind her house.",
    "Customers who order before noon will receive their parcels on the same day.",
    "The orchestra played a quiet piece while the guests found their seats.",
    "Remember to bring a warm jacket because the evening air gets cold near the lake.",
    "The research team collected samples from twelve different lakes across the country.",
    "Thank you for calling, your conversation may be recorded for training purposes.",
)
_VOICES = ("en-us", "en-gb", "en-us+m3", "en-gb+f3")
_SPEEDS = (150, 170, 140, 160)


def espeak_sentence_clips(tmp: Path) -> list[Clip]:
    """WER_SENTENCES spoken by four espeak-ng voices at four speeds."""
    return [
        Clip(
            f"espeak-{i}",
            espeak(text, tmp, voice=_VOICES[i % 4], speed=_SPEEDS[(i // 4) % 4]),
            text,
        )
        for i, text in enumerate(WER_SENTENCES)
    ]


def wer_corpus(tmp: Path) -> list[Clip]:
    """Everything with a reference transcript: LibriVox, cards, espeak-ng sentences."""
    return librivox_clips() + card_clips() + espeak_sentence_clips(tmp)


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


def join(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts).astype(np.float32)


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def sox_resample(audio: np.ndarray, rate: int, tmp: Path) -> np.ndarray:
    """Resample with the sox command-line tool (an independent, real converter)."""
    src, dst = tmp / "in.raw", tmp / f"out{rate}.raw"
    src.write_bytes(pcm16(audio))
    fmt = ["-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1"]
    subprocess.run(
        ["sox", *fmt, "-r", str(RATE), str(src), *fmt, "-r", str(rate), str(dst)], check=True
    )
    return np.frombuffer(dst.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0


def sox_synth(args: list[str], seconds: float, tmp: Path) -> np.ndarray:
    """Non-speech from sox's synthesizer (noise, tones, chords)."""
    dst = tmp / "synth.raw"
    subprocess.run(
        [
            "sox",
            "-n",
            "-t",
            "raw",
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-c",
            "1",
            "-r",
            str(RATE),
            str(dst),
            "synth",
            str(seconds),
            *args,
        ],
        check=True,
    )
    return np.frombuffer(dst.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0


_NORMALIZE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.SubstituteRegexes({r"[-–—]": " ", r"\bmr\b\.?": "mister", r"\bmrs\b\.?": "missus"}),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    """WER over a whole set (errors / reference words), with the same normalisation."""
    return float(
        jiwer.wer(
            references,
            hypotheses,
            reference_transform=_NORMALIZE,
            hypothesis_transform=_NORMALIZE,
        )
    )


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words), normalised like `wer`."""
    out = jiwer.process_words(
        reference, hypothesis, reference_transform=_NORMALIZE, hypothesis_transform=_NORMALIZE
    )
    errors = out.substitutions + out.deletions + out.insertions
    return errors, out.hits + out.substitutions + out.deletions


def wer(reference: str, hypothesis: str) -> float:
    return float(
        jiwer.wer(
            reference,
            hypothesis,
            reference_transform=_NORMALIZE,
            hypothesis_transform=_NORMALIZE,
        )
    )


def sox_encode(audio: np.ndarray, rate: int, encoding: str, bits: int, tmp: Path) -> bytes:
    """Headerless audio in a telephony/PCM encoding, written by sox from 16 kHz audio."""
    src, dst = tmp / "src.raw", tmp / f"out-{encoding}-{bits}-{rate}.raw"
    src.write_bytes(pcm16(audio))
    fmt = ["-t", "raw", "-c", "1"]
    subprocess.run(
        [
            "sox",
            *fmt,
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-r",
            str(RATE),
            str(src),
            *fmt,
            "-e",
            encoding,
            "-b",
            str(bits),
            "-r",
            str(rate),
            str(dst),
        ],
        check=True,
    )
    return dst.read_bytes()


def opusenc_ogg(audio: np.ndarray, rate: int, tmp: Path) -> bytes:
    """An Ogg/Opus stream written by the reference encoder (opus-tools' opusenc)."""
    wav, dst = tmp / f"in{rate}.wav", tmp / f"out{rate}.opus"
    write_wav(sox_resample(audio, rate, tmp) if rate != RATE else audio, rate, wav)
    subprocess.run(["opusenc", "--quiet", "--bitrate", "24", str(wav), str(dst)], check=True)
    return dst.read_bytes()


def wav_bytes(audio: np.ndarray, rate: int = RATE) -> bytes:
    """`audio` as a 16-bit mono WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16(audio))
    return out.getvalue()


def wav_frames(frames: np.ndarray, rate: int = RATE) -> bytes:
    """int16 `frames` shaped (samples, channels) as a 16-bit WAV file of that many channels."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.astype("<i2").tobytes())
    return out.getvalue()


def write_wav(audio: np.ndarray, rate: int, path: Path) -> None:
    path.write_bytes(wav_bytes(audio, rate))


def tone(seconds: float, rate: int = RATE, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def opus_packets(audio: np.ndarray, rate: int) -> list[bytes]:
    """Raw Opus packets (20 ms) from FFmpeg's libopus encoder, fed audio at `rate`."""
    import av

    samples = sox_resample_inline(audio, rate)
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = rate
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 24000
    encoder.open()
    frame_size = rate // 50
    packets: list[bytes] = []
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    for start in range(0, pcm.size - frame_size + 1, frame_size):
        frame = av.AudioFrame.from_ndarray(
            pcm[None, start : start + frame_size], format="s16", layout="mono"
        )
        frame.sample_rate = rate
        frame.pts = start
        packets += [bytes(p) for p in encoder.encode(frame)]
    packets += [bytes(p) for p in encoder.encode(None)]
    return packets


def sox_resample_inline(audio: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    return audio if rate == RATE else soxr.resample(audio, RATE, rate).astype(np.float32)


def encode_file(
    audio: np.ndarray, fmt: str, codec: str, rate: int = RATE, channels: int = 1
) -> bytes:
    """A whole file in a container, written by FFmpeg's muxers/encoders through PyAV."""
    import io

    import av

    samples = sox_resample_inline(audio, rate)
    layout = "stereo" if channels == 2 else "mono"
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        planar = np.repeat(pcm[None, :], channels, axis=0) if channels == 2 else pcm[None, :]
        frame = av.AudioFrame.from_ndarray(
            planar.T.reshape(1, -1).copy() if channels == 2 else planar, format="s16", layout=layout
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def espeak(text: str, tmp: Path, voice: str = "en-us", speed: int = 150) -> np.ndarray:
    """A phrase spoken by espeak-ng, as 16 kHz float32."""
    path = tmp / f"espeak-{abs(hash((text, voice, speed)))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return decode_audio(str(path), sampling_rate=RATE)


def offline_texts(audios: list[np.ndarray], *, vad_filter: bool = False) -> list[str]:
    """Plain faster-whisper on each clip (its defaults: beam 5, 30 s windows), in this
    process, on the server's model: the accuracy streaming should match. `vad_filter`:
    with its own Silero VAD, which long recordings need (without it, it repeats whole
    sentences of the 30 s pyannote call at the window seam)."""
    from faster_whisper import WhisperModel

    from pulse_stt.config import Settings
    from pulse_stt.engine.model_store import resolve_model_dir

    settings = Settings()
    model = WhisperModel(
        str(resolve_model_dir(settings.model, settings.cache_dir)),
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
    )
    texts = []
    for audio in audios:
        segments, _ = model.transcribe(audio, language="en", vad_filter=vad_filter)
        texts.append(" ".join(s.text.strip() for s in segments))
    return texts
