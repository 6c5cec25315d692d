"""The browser page at `/` in real headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium), with a fake microphone that plays a real
recording: the page must caption the right words, live and from uploaded files.

Each test saves a screenshot and prints its path (`pytest -s` shows it; a failure
message names it too).
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from tests.support.audio import Clip, card_clips, join, silence, wer, write_wav
from tests.support.server import Server

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
RATE = 16_000
T = TypeVar("T")


@contextmanager
def chromium(server: Server, tmp_path: Path, microphone: Path) -> Iterator[WebDriver]:
    """Headless Chromium on the page, its microphone playing `microphone` once."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: `make test-deps` installs Debian's "
            "chromium and chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=tmp_path)}",
        "--window-size=1280,1000",
        "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
        "--use-fake-device-for-media-stream",
        # %noloop: play the recording once, then silence (Chromium loops it otherwise).
        f"--use-file-for-fake-audio-capture={microphone}%noloop",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager never looks for (or downloads) one.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(f"{server.http}/")
        yield driver
        # Script errors fail the test; refused requests are logged as "network" and may be
        # what a test provoked.
        logged = driver.get_log("browser")
        errors = [e for e in logged if e["level"] == "SEVERE" and e["source"] != "network"]
        assert not errors, f"the page logged errors: {errors}"
    finally:
        driver.quit()


def screenshot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def wait_for(
    driver: WebDriver, tmp_path: Path, what: str, condition: Callable[[], T], timeout: float
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            shot = screenshot(driver, tmp_path, "timeout")
            pytest.fail(f"no {what} within {timeout:.0f} s; {page_state(driver)}; see {shot}")
        time.sleep(0.1)


def page_state(driver: WebDriver) -> str:
    return (
        f"status {text(driver, 'status')!r}, error {text(driver, 'error-text')!r}, "
        f"captions {text(driver, 'captions')!r}"
    )


def text(driver: WebDriver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text.strip()


def enter_key(driver: WebDriver, key: str) -> None:
    field = driver.find_element(By.ID, "api-key")
    field.clear()
    field.send_keys(key)


def speaker_turns(container) -> list[tuple[str, str, str]]:
    """(speaker label, text, colour) per paragraph, from what the page shows."""
    turns = []
    for line in container.find_elements(By.CSS_SELECTOR, "p"):
        labels = line.find_elements(By.CSS_SELECTOR, ".speaker-label")
        words = line.find_elements(By.CSS_SELECTOR, ".words")
        if labels and words:
            label = labels[0].get_attribute("textContent").strip()  # as written, not as styled
            turns.append((label, words[0].text, words[0].value_of_css_property("color")))
    return turns


def recording(tmp_path: Path, name: str, audio: np.ndarray) -> Path:
    path = tmp_path / f"{name}.wav"
    write_wav(audio, RATE, path)
    return path


def test_live_captions_from_the_microphone(
    server: Server, clips: list[Clip], tmp_path: Path
) -> None:
    """Two read sentences with a pause between them into the fake microphone: partials
    show while they are spoken, and the finals spell the reference."""
    first, second = clips[1], clips[2]
    audio = join(silence(1.0), first.audio, silence(1.5), second.audio, silence(2.0))
    microphone = recording(tmp_path, "microphone", audio)
    with chromium(server, tmp_path, microphone) as driver:
        enter_key(driver, server.key)
        Select(driver.find_element(By.ID, "language")).select_by_value("en")
        driver.find_element(By.ID, "diarize").click()
        driver.find_element(By.ID, "start").click()
        wait_for(driver, tmp_path, "'Listening'", lambda: "Listening" in text(driver, "status"), 30)
        started = time.monotonic()
        partials: list[str] = []
        shot_taken = False
        # The fake microphone plays the recording once, in real time.
        while time.monotonic() - started < audio.size / RATE + 1.0:
            partial = text(driver, "partial")
            if partial and partial not in partials:
                partials.append(partial)
                if not shot_taken and driver.find_elements(By.CSS_SELECTOR, "#finals .final"):
                    screenshot(driver, tmp_path, "browser-live-partial")  # a final and a partial
                    shot_taken = True
            time.sleep(0.1)
        driver.find_element(By.ID, "stop").click()
        wait_for(driver, tmp_path, "end of stream", lambda: text(driver, "status") == "Done", 60)
        shot = screenshot(driver, tmp_path, "browser-live")

        finals = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#finals .final")]
        reference = f"{first.text} {second.text}"
        shown = " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "#finals .words"))
        assert wer(reference, shown) <= 0.12, (finals, shot)
        assert len(finals) >= 2, finals  # one final per sentence, appended in order
        assert partials, "no partial caption was shown while speaking"
        assert text(driver, "partial") == ""  # the last partial gave way to its final
        assert not driver.find_element(By.ID, "error").is_displayed(), text(driver, "error-text")
        # One reader: one speaker, labelled once and coloured as such.
        turns = speaker_turns(driver.find_element(By.ID, "finals"))
        assert [label for label, _, _ in turns] == ["Speaker 1"], turns
        words = driver.find_elements(By.CSS_SELECTOR, "#finals .words")
        assert all("speaker-0" in w.get_attribute("class") for w in words)
        # The key stays in this tab's sessionStorage; nothing persistent holds it.
        assert server.key not in driver.execute_script("return JSON.stringify(localStorage)")


def test_dropped_and_picked_files_are_transcribed(
    server: Server, clips: list[Clip], tmp_path: Path
) -> None:
    """A file chosen with the picker, then a two-person conversation dropped on the zone
    with speaker labels on: transcripts from REST, coloured per speaker."""
    reader = clips[0]
    picked = recording(tmp_path, "picked", reader.audio)
    cards = {clip.name: clip for clip in card_clips()}
    parts = [clips[0], cards["cards-005"], clips[4], cards["cards-002"]]
    conversation = join(silence(0.5), *[a for p in parts for a in (p.audio, silence(0.8))])
    dropped = recording(tmp_path, "conversation", conversation)
    with chromium(server, tmp_path, picked) as driver:
        enter_key(driver, server.key)
        Select(driver.find_element(By.ID, "language")).select_by_value("en")
        driver.find_element(By.ID, "file-input").send_keys(str(picked))
        result = wait_for(
            driver,
            tmp_path,
            "transcript of the picked file",
            lambda: driver.find_elements(By.CSS_SELECTOR, ".file-transcript"),
            120,
        )[0]
        assert result.find_element(By.CSS_SELECTOR, "h3").text == "picked.wav"
        transcript = result.find_element(By.CSS_SELECTOR, ".transcript").text
        assert reader.matches(transcript, 0.12), transcript

        driver.find_element(By.ID, "diarize").click()
        driver.execute_script(
            """
            const [name, data] = arguments;
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "audio/wav" }));
            const zone = document.getElementById("drop-zone");
            for (const type of ["dragenter", "dragover", "drop"]) {
              zone.dispatchEvent(new DragEvent(type, {
                dataTransfer: transfer, bubbles: true, cancelable: true }));
            }
            """,
            dropped.name,
            base64.b64encode(dropped.read_bytes()).decode(),
        )
        wait_for(
            driver,
            tmp_path,
            "transcript of the dropped file",
            lambda: len(driver.find_elements(By.CSS_SELECTOR, ".file-transcript")) == 2,
            180,
        )
        shot = screenshot(driver, tmp_path, "browser-files")
        newest = driver.find_elements(By.CSS_SELECTOR, ".file-transcript")[0]
        assert newest.find_element(By.CSS_SELECTOR, "h3").text == "conversation.wav"
        turns = speaker_turns(newest)
        # Reader, card player, reader, card player: two people taking turns.
        labels = [label for label, _, _ in turns]
        assert len(labels) == 4 and labels[0] == labels[2] != labels[1] == labels[3], (turns, shot)
        assert turns[0][2] != turns[1][2], "both speakers have the same colour"
        reader_text = " ".join(words for label, words, _ in turns if label == labels[0])
        assert wer(f"{parts[0].text} {parts[2].text}", reader_text) <= 0.12, reader_text
        assert not driver.find_element(By.ID, "error").is_displayed(), text(driver, "error-text")


def test_page_explains_refusals(server: Server, clips: list[Clip], tmp_path: Path) -> None:
    """A wrong key, and a parameter the server refuses before the upgrade (which a browser
    cannot read from the handshake): the page shows the server's own message."""
    microphone = recording(tmp_path, "microphone", clips[1].audio)
    with chromium(server, tmp_path, microphone) as driver:
        enter_key(driver, "pstt_wrong_key")
        driver.find_element(By.ID, "start").click()
        message = wait_for(driver, tmp_path, "error", lambda: text(driver, "error-text"), 20)
        assert "HTTP 401" in message and "API key" in message, message
        assert driver.find_element(By.ID, "start").is_enabled()

        enter_key(driver, server.key)
        driver.find_element(By.ID, "error-close").click()
        keywords = driver.find_element(By.ID, "keywords")
        keywords.send_keys("Dashwood:99")
        driver.find_element(By.ID, "start").click()
        message = wait_for(driver, tmp_path, "error", lambda: text(driver, "error-text"), 20)
        screenshot(driver, tmp_path, "browser-refused")
        assert "HTTP 400" in message and "keywords" in message and "0 to 20" in message, message
        assert text(driver, "status") == "Stopped"
        assert driver.find_element(By.ID, "start").is_enabled()
        stored = json.loads(driver.execute_script("return JSON.stringify(sessionStorage)"))
        assert server.key in stored.values()  # kept for the tab, as the page says


def test_worklet_resamples_to_16k_without_aliasing(
    server: Server, clips: list[Clip], tmp_path: Path
) -> None:
    """The page's AudioWorklet, run by Chromium's own audio engine (offline): a 1 kHz
    tone keeps its level, and an 11 kHz tone (above the 8 kHz the output can carry,
    where plain decimation would fold it to 5 kHz) is filtered out."""
    microphone = recording(tmp_path, "microphone", clips[1].audio)
    with chromium(server, tmp_path, microphone) as driver:
        for rate in (44_100, 48_000):
            pcm = driver.execute_async_script(
                """
                const [rate, done] = arguments;
                (async () => {
                  const context = new OfflineAudioContext(1, rate, rate);  // one second
                  await context.audioWorklet.addModule("/static/audio-worklet.js");
                  const buffer = context.createBuffer(1, rate, rate);
                  const data = buffer.getChannelData(0);
                  for (let i = 0; i < rate; i++) {
                    data[i] = 0.4 * Math.sin(2 * Math.PI * 1000 * i / rate)
                            + 0.4 * Math.sin(2 * Math.PI * 11000 * i / rate);
                  }
                  const node = new AudioWorkletNode(context, "pcm16-downsampler", {
                    numberOfOutputs: 0,
                    processorOptions: { targetRate: 16000, frameMs: 40 },
                  });
                  const samples = [];
                  const flushed = new Promise((resolve) => {
                    node.port.onmessage = (event) => {
                      const { type, pcm } = event.data;
                      if (type === "audio") samples.push(...new Int16Array(pcm));
                      else if (type === "flushed") resolve();
                    };
                  });
                  const source = new AudioBufferSourceNode(context, { buffer });
                  source.connect(node);
                  source.start();
                  context.startRendering().then(() => {
                    node.port.postMessage({ type: "flush" });
                  });
                  await flushed;
                  done(samples);
                })().catch((error) => done(String(error)));
                """,
                rate,
            )
            assert isinstance(pcm, list), pcm
            out = np.asarray(pcm, dtype=np.float64) / 32767
            assert abs(out.size - RATE) <= 640, out.size  # one second at 16 kHz
            steady = out[800:15_200]  # away from the edges of the tone burst
            spectrum = np.abs(np.fft.rfft(steady * np.hanning(steady.size)))
            spectrum *= 2 / np.hanning(steady.size).sum()  # a sine's amplitude
            freqs = np.fft.rfftfreq(steady.size, 1 / RATE)

            def level(hz: float, spectrum=spectrum, freqs=freqs) -> float:
                return float(spectrum[np.abs(freqs - hz) < 30].max())

            assert level(1000) == pytest.approx(0.4, rel=0.03), (rate, level(1000))
            assert level(5000) < 0.4 / 1000, (rate, level(5000))  # alias of 11 kHz: < -60 dB
