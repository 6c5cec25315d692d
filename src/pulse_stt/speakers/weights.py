"""Resemblyzer's speaker-encoder weights, read without torch.

The PyPI wheel `resemblyzer` ships `pretrained.pt`, written by `torch.save` in its legacy
(pre-zip) format: five pickles in a row (magic number, protocol version, system info,
the object, the storage keys) followed by each storage's raw little-endian bytes. We
unpickle with a restricted `Unpickler` that knows only the few names such a state dict
uses, so a tampered file cannot run code, and rebuild every tensor as a numpy array.

The package itself is installed with `pip install --no-deps resemblyzer` (its
dependencies pull torch, which we do not need); we only locate its directory, never
import it.
"""

from __future__ import annotations

import importlib.util
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

import numpy as np

RESEMBLYZER_PIN = "resemblyzer==0.1.4"
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class SpeakerWeightsError(RuntimeError):
    """The speaker-encoder weights are missing or not a file we can read."""


def bundled_weights_path() -> Path:
    """`pretrained.pt` inside the installed `resemblyzer` package (not imported)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise SpeakerWeightsError(
            "speaker diarization needs the speaker-encoder weights from the PyPI package "
            f"resemblyzer; install them with: pip install --no-deps {RESEMBLYZER_PIN}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise SpeakerWeightsError(f"{path} is missing; reinstall {RESEMBLYZER_PIN}")
    return path


class _Storage:
    def __init__(self, dtype: type, key: str, size: int) -> None:
        self.dtype = np.dtype(dtype)
        self.key = key
        self.size = size
        self.data: np.ndarray | None = None


class _TensorRef:
    """A view into a storage, filled in once the storage bytes have been read."""

    def __init__(
        self, storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]
    ) -> None:
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.stride = stride

    def to_numpy(self) -> np.ndarray:
        assert self.storage.data is not None
        itemsize = self.storage.dtype.itemsize
        return np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset :],
            shape=self.shape,
            strides=tuple(s * itemsize for s in self.stride),
        ).copy()


def _rebuild_tensor_v2(
    storage: _Storage,
    offset: int,
    shape: tuple[int, ...],
    stride: tuple[int, ...],
    *_: Any,
) -> _TensorRef:
    return _TensorRef(storage, offset, tuple(shape), tuple(stride))


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = _STORAGE_DTYPES[name]


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], storages: dict[str, _Storage]) -> None:
        super().__init__(file, encoding="latin1")
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a weights file")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, storage_type, key, _location, size, *_ = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type.dtype, key, int(size))
        return self._storages[key]


def _restricted_load(file: IO[bytes]) -> Any:
    return _StateDictUnpickler(file, {}).load()


def _tensors_to_numpy(value: Any) -> Any:
    if isinstance(value, _TensorRef):
        return value.to_numpy()
    if isinstance(value, dict):
        return {k: _tensors_to_numpy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_tensors_to_numpy(v) for v in value)
    return value


def load_legacy_torch_checkpoint(path: Path) -> dict[str, Any]:
    """Read a legacy-format `torch.save` file of tensors into numpy arrays."""
    storages: dict[str, _Storage] = {}
    with path.open("rb") as file:
        try:
            if _restricted_load(file) != _LEGACY_MAGIC:
                raise SpeakerWeightsError(f"{path} is not a legacy torch checkpoint")
            if _restricted_load(file) != _LEGACY_PROTOCOL:
                raise SpeakerWeightsError(f"{path}: unsupported checkpoint protocol")
            _restricted_load(file)  # system info (endianness, type sizes)
            obj = _StateDictUnpickler(file, storages).load()
            keys = _restricted_load(file)
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise SpeakerWeightsError(f"{path} is not a readable checkpoint: {exc}") from exc
        for key in keys:
            storage = storages[key]
            count = int(np.frombuffer(file.read(8), dtype="<i8")[0])
            raw = file.read(count * storage.dtype.itemsize)
            if len(raw) != count * storage.dtype.itemsize:
                raise SpeakerWeightsError(f"{path} is truncated")
            storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    result = _tensors_to_numpy(obj)
    if not isinstance(result, dict):
        raise SpeakerWeightsError(f"{path} does not hold a dictionary")
    return result
