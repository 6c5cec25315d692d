"""Redaction on what Whisper actually writes: recall and precision per entity kind and language.

Speaks the phrases of tests/fixtures/redaction_corpus.json with espeak-ng voices at two
rates, sends each WAV to the real server (REST, `redact_pii=true&redact_pci=true`, with
and without `itn_normalize`) and scores the redacted transcripts:

- recall: an expected entity counts when its token kind is in the transcript and none of
  its secret text (the digits, the name, the e-mail's local part) is left;
- precision: redaction tokens that stand for an expected entity, over all tokens emitted
  (the corpus has phrases with numbers and words that are no entity at all).

`--record PATH` also writes what the model wrote with redaction off (the unit tests'
fixture, tests/unit/fixtures/redaction_outputs.json; `expect` is null where the model
lost an entity on the way, so there is nothing left to redact). Prints figures; never fails.

    .venv/bin/python bench/shaping_redaction.py [--rates 140 175] [--record PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.redaction import LABEL, TOKEN_KIND
from tests.support.server import Server, running_server

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "redaction_corpus.json"


def transcribe(server: Server, wav: bytes, language: str, extra: str) -> str:
    response = httpx.post(
        f"{server.http}/waves/v1/stt/?model=pulse&language={language}{extra}",
        content=wav,
        headers={**server.headers(), "Content-Type": "audio/wav"},
        timeout=300,
    )
    response.raise_for_status()
    return str(response.json()["transcription"])


# Digits an entity needs in the unredacted transcript to count as heard.
MIN_DIGITS = {"phone": 7, "card": 13, "cvv": 3, "expiry": 3, "iban": 15, "account": 6}


def plain(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def heard(kind: str, entry: dict, raw: str) -> bool:
    """Whether the model's unredacted transcript still holds the entity to redact."""
    if kind in MIN_DIGITS:
        return len(re.findall(r"\d", raw)) >= MIN_DIGITS[kind]
    secrets = entry.get("secrets", [])
    if kind == "firstname":
        secrets = secrets[:1]
    elif kind == "lastname":
        secrets = secrets[1:2]
    return bool(secrets) and all(plain(s) in plain(raw) for s in secrets)


def expectation(entry: dict, raw: str) -> list[str] | None:
    """The fixture's `expect`: the kinds to redact in `raw` when the model kept every entity
    spoken, [] for a phrase without any, None when the model lost one (nothing to test)."""
    if all(heard(kind, entry, raw) for kind in entry["kinds"]):
        return list(entry["kinds"])
    return None


def leaked(entry: dict, text: str) -> list[str]:
    """The secrets of `entry` still readable in a redacted transcript."""
    out = [s for s in entry.get("secrets", []) if plain(s) in plain(text)]
    if set(entry["kinds"]) & set(MIN_DIGITS):
        out += re.findall(r"\d(?:[\s.,/-]*\d){2,}", text)
    return out


def score(entry: dict, raw: str, text: str) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """(heard, redacted, emitted-but-unexpected) counts per corpus kind for one phrase."""
    emitted = Counter(LABEL.findall(text))
    got: Counter[str] = Counter()
    said: Counter[str] = Counter()
    clean = not leaked(entry, text)
    for kind in entry["kinds"]:
        if emitted[TOKEN_KIND[kind]] > 0:
            emitted[TOKEN_KIND[kind]] -= 1
            if clean and heard(kind, entry, raw):
                got[kind] += 1
        said[kind] += heard(kind, entry, raw)
    spurious = Counter({k: v for k, v in emitted.items() if v > 0})
    return said, got, spurious


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", nargs="*", type=int, default=[140, 175])
    parser.add_argument("--record", type=Path, help="write the model's outputs here (JSON)")
    args = parser.parse_args()
    corpus = json.loads(CORPUS.read_text())
    redact = "&redact_pii=true&redact_pci=true"
    modes = {"plain": "", "itn": "&itn_normalize=true"}
    spoken: dict[tuple[str, str, str], int] = defaultdict(int)
    expected: dict[tuple[str, str, str], int] = defaultdict(int)
    found: dict[tuple[str, str, str], int] = defaultdict(int)
    spurious: dict[tuple[str, str], int] = defaultdict(int)
    emitted: dict[tuple[str, str], int] = defaultdict(int)
    records: list[dict] = []
    misses: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as server:
        for entry in corpus:
            for rate in args.rates:
                wav_path = Path(tmp) / "phrase.wav"
                voice = ["-v", entry["voice"], "-s", str(rate)]
                subprocess.run(
                    ["espeak-ng", *voice, "-w", str(wav_path), entry["text"]], check=True
                )
                wav = wav_path.read_bytes()
                lang = entry["lang"]
                for mode, extra in modes.items():
                    raw = transcribe(server, wav, lang, extra)
                    records.append(
                        {
                            "lang": lang,
                            "voice": entry["voice"],
                            "rate": rate,
                            "itn": mode == "itn",
                            "spoken": entry["text"],
                            "kinds": entry["kinds"],
                            "secrets": entry.get("secrets", []),
                            "output": raw,
                            "expect": expectation(entry, raw),
                        }
                    )
                for mode, extra in modes.items():
                    text = transcribe(server, wav, lang, extra + redact)
                    raw = next(
                        r["output"] for r in reversed(records) if r["itn"] == (mode == "itn")
                    )
                    exp, got, extra_labels = score(entry, raw, text)
                    for kind in entry["kinds"]:
                        spoken[(mode, lang, kind)] += 1
                        expected[(mode, lang, kind)] += exp[kind]
                        found[(mode, lang, kind)] += got[kind]
                    spurious[(mode, lang)] += sum(extra_labels.values())
                    emitted[(mode, lang)] += len(LABEL.findall(text))
                    if sum(got.values()) < sum(exp.values()) or extra_labels:
                        misses.append(f"{mode:5} {lang} {rate}: {raw!r} -> {text!r}")
                    print(f"{mode:5} {lang} {rate}: {text}", file=sys.stderr, flush=True)
            if args.record:
                args.record.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n")
    report(spoken, expected, found, spurious, emitted, misses)


def report(
    spoken: dict[tuple[str, str, str], int],
    expected: dict[tuple[str, str, str], int],
    found: dict[tuple[str, str, str], int],
    spurious: dict[tuple[str, str], int],
    emitted: dict[tuple[str, str], int],
    misses: list[str],
) -> None:
    kinds = sorted({k for _, _, k in spoken})
    for mode in ("plain", "itn"):
        langs = sorted({lang for m, lang, _ in spoken if m == mode})
        print(f"\nitn_normalize={'true' if mode == 'itn' else 'false'}: redacted/heard (spoken)")
        print(f"| lang | {' | '.join(kinds)} | precision |")
        print(f"|---|{'---|' * len(kinds)}---|")
        for lang in langs:
            cells = []
            for kind in kinds:
                n = spoken.get((mode, lang, kind), 0)
                h = expected.get((mode, lang, kind), 0)
                cells.append(f"{found[(mode, lang, kind)]}/{h} ({n})" if n else "–")
            total = emitted[(mode, lang)]
            precision = f"{(total - spurious[(mode, lang)]) / total:.0%}" if total else "–"
            print(f"| {lang} | {' | '.join(cells)} | {precision} |")
        hit = sum(v for (m, _, _), v in found.items() if m == mode)
        want = sum(v for (m, _, _), v in expected.items() if m == mode)
        total = sum(v for (m, _), v in emitted.items() if m == mode)
        wrong = sum(v for (m, _), v in spurious.items() if m == mode)
        print(
            f"all: recall {hit}/{want} = {hit / want:.0%}, precision {(total - wrong) / total:.0%}"
        )
    print("\nmisses and spurious tokens:")
    for line in misses:
        print("  " + line)


if __name__ == "__main__":
    main()
