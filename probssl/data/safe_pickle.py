"""Unpickling restricted to plain data: dicts, lists, strings, bytes, numbers and numpy arrays.

The official CIFAR files are Python pickles, and a pickle can name any importable callable
(``os.system``, ``subprocess.Popen``...) to be called during loading. A downloaded or
user-supplied archive must not be able to run code, so :class:`RestrictedUnpickler` resolves
only the handful of globals needed to rebuild a numpy array and refuses every other one.
"""

from __future__ import annotations

import importlib
import io
import pickle
from typing import IO, Any

import numpy as np

__all__ = ["RestrictedUnpickler", "UnsafePickleError", "safe_load"]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global outside the allow-list."""


def _numpy_core(submodule: str) -> Any:
    # numpy 2 renamed numpy.core to numpy._core (the old name is a deprecated alias); numpy 1
    # only has numpy.core. Pickles written by either refer to their own spelling.
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # numpy < 2
        return importlib.import_module(f"numpy.core.{submodule}")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    multiarray = _numpy_core("multiarray")
    numeric = _numpy_core("numeric")
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Protocol <= 4 arrays: ndarray.__reduce__ -> _reconstruct(ndarray, shape, dtype) + state.
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        # Protocol 5 arrays: _frombuffer(buffer, dtype, shape, order).
        ("numpy.core.numeric", "_frombuffer"): numeric._frombuffer,
        ("numpy._core.numeric", "_frombuffer"): numeric._frombuffer,
        # Python 3 writes bytes as _codecs.encode(str, "latin1") under protocol <= 2; it only
        # converts text to bytes.
        ("_codecs", "encode"): _latin1_encode,
    }
    return table


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Stand-in for _codecs.encode that cannot be steered into other codecs (e.g. the
    # compression codecs reachable through codecs.encode).
    if encoding not in ("latin1", "latin-1", "iso-8859-1"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that only resolves numpy-array globals.

    Any other global raises :class:`UnsafePickleError` before it is imported, let alone called.
    """

    _ALLOWED: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if RestrictedUnpickler._ALLOWED is None:
            RestrictedUnpickler._ALLOWED = _allowed_globals()
        try:
            return RestrictedUnpickler._ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: only plain data and numpy arrays are allowed"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing persistent ids")


def safe_load(file: IO[bytes] | bytes, *, encoding: str = "latin1") -> Any:
    """Unpickle ``file`` (a binary file object or bytes) with :class:`RestrictedUnpickler`.

    ``encoding="latin1"`` is what numpy needs to rebuild arrays from Python 2 pickles (the
    CIFAR files were written by Python 2): their ``str`` payloads become ``str`` and numpy
    re-encodes them byte for byte. Python 2 ``str`` dict keys therefore arrive as ``str``.
    """
    if isinstance(file, (bytes, bytearray)):
        file = io.BytesIO(file)
    return RestrictedUnpickler(file, encoding=encoding).load()
