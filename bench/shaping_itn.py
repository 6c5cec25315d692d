"""ITN on what the model actually writes: entity accuracy per kind and language.

Speaks the phrases of tests/fixtures/itn_corpus.json with espeak-ng voices at a few rates,
sends each to the real server over REST twice (plain, and `itn_normalize=true`) and counts
a phrase right when its expected written form (e.g. `555-123-4567`, `$23.50`) is in the
transcript. "before" is NeMo's grammar alone over the plain transcript's words, as the
server did before the written-form canonicaliser (`text/canonical.py`); "after" is what
the server answers now.

    .venv/bin/python bench/shaping_itn.py                 # the table
    .venv/bin/python bench/shaping_itn.py --observe tests/unit/fixtures/model_outputs.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from tests.support.audio import encode_file, espeak
from tests.support.server import running_server

from pulse_stt.config import Settings
from pulse_stt.text.itn import NemoInverseNormalizer, apply_nemo
from pulse_stt.text.tokens import Token, render

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "itn_corpus.json"
VOICES = {"en": "en-us", "de": "de", "es": "es", "fr": "fr", "it": "it", "pt": "pt", "nl": "nl"}


def corpus() -> list[dict[str, str]]:
    phrases: list[dict[str, str]] = json.loads(CORPUS.read_text())["phrases"]
    return phrases


def _transcribe(client: httpx.Client, url: str, headers: dict, wav: bytes, query: str) -> dict:
    response = client.post(f"{url}/waves/v1/stt/?{query}", content=wav, headers=headers)
    response.raise_for_status()
    data: dict = response.json()
    return data


def _before(words: list[dict], language: str, nemo: NemoInverseNormalizer) -> str:
    tokens = [Token(w["word"], w["start"], w["end"], 1.0) for w in words]
    if not tokens or not nemo.supports(language):
        return render(tokens)
    return render(apply_nemo(tokens, language, nemo))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="*", default=[150, 120])
    parser.add_argument("--languages", nargs="*", default=list(VOICES))
    parser.add_argument("--observe", type=Path, help="write the model's outputs here (JSON)")
    args = parser.parse_args()
    phrases = [p for p in corpus() if p["language"] in args.languages]
    nemo = NemoInverseNormalizer(Settings().cache_dir / "itn")
    rows: list[dict[str, object]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(Path(tmp)) as server,
        httpx.Client(timeout=300) as client,
    ):
        for rate in args.rates:
            for phrase in phrases:
                language = phrase["language"]
                audio = espeak(phrase["spoken"], Path(tmp), voice=VOICES[language], speed=rate)
                wav = encode_file(audio, "wav", "pcm_s16le")
                base = f"model=pulse&language={language}&word_timestamps=true"
                plain = _transcribe(client, server.http, server.headers(), wav, base)
                itn = _transcribe(
                    client, server.http, server.headers(), wav, base + "&itn_normalize=true"
                )
                before = _before(plain.get("words") or [], language, nemo)
                row = {
                    **phrase,
                    "rate": rate,
                    "model_output": plain["transcription"],
                    "before": before,
                    "after": itn["transcription"],
                }
                rows.append(row)
                ok = "ok " if phrase["expected"] in itn["transcription"] else "-- "
                print(ok, phrase["id"], rate, "|", plain["transcription"], "=>", row["after"])
    if args.observe:
        keep = ("id", "language", "kind", "rate", "spoken", "model_output", "expected")
        observed = [{k: r[k] for k in keep} for r in rows]
        args.observe.write_text(json.dumps(observed, ensure_ascii=False, indent=1) + "\n")
    _table(rows)


def _table(rows: list[dict[str, object]]) -> None:
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        expected = str(row["expected"])
        for key in ((str(row["language"]), str(row["kind"])), (str(row["language"]), "all")):
            counts[key][0] += 1
            counts[key][1] += expected in str(row["before"])
            counts[key][2] += expected in str(row["after"])
    print(f"\n{'language':<9}{'kind':<9}{'phrases':>8}{'before':>8}{'after':>8}")
    for (language, kind), (n, before, after) in sorted(counts.items()):
        print(f"{language:<9}{kind:<9}{n:>8}{before:>8}{after:>8}")
    n = len(rows)
    before = sum(str(r["expected"]) in str(r["before"]) for r in rows)
    after = sum(str(r["expected"]) in str(r["after"]) for r in rows)
    print(f"{'all':<9}{'all':<9}{n:>8}{before:>8}{after:>8}")


if __name__ == "__main__":
    main()
