"""The only data that comes back from a student's process: JSON, with number arrays in it.

The grader never unpickles what a student's process sends (unpickling runs code). It reads
JSON whose objects may be a number array (``{"__array__": dtype, "shape": [...], "data":
base64}``, numeric and boolean dtypes only), a complex number, or an
:class:`utils.checks.Unreadable`; anything else that is not plain JSON is refused, as is a
message over ``MAX_BYTES``.
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np

__all__ = ["encode", "decode", "WireError", "MAX_BYTES"]

MAX_BYTES = 64 * 2**20


class WireError(ValueError):
    """A message that is not what the wire format allows."""


def _plain(x):
    from utils.checks import Unreadable

    if x is None or isinstance(x, bool | int | str):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else {"__float__": repr(x)}
    if isinstance(x, complex):
        return {"__complex__": [repr(x.real), repr(x.imag)]}
    if isinstance(x, Unreadable):
        return {"__unreadable__": str(x.type_name)}
    if isinstance(x, np.generic):
        return _plain(x.item())
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biufc":
            raise WireError(f"an array of dtype {x.dtype} cannot be sent")
        a = x.copy(order="C")
        return {"__array__": a.dtype.str, "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        if not all(isinstance(k, str) for k in x):
            raise WireError("dictionary keys must be strings")
        return {k: _plain(v) for k, v in x.items()}
    raise WireError(f"a {type(x).__name__} cannot be sent")


def encode(x) -> bytes:
    """``x`` (None, bool, int, float, complex, str, numpy arrays and scalars, Unreadable, lists and dicts) as bytes."""
    return json.dumps(_plain(x), allow_nan=False, separators=(",", ":")).encode()


def _revive(obj: dict):
    from utils.checks import Unreadable

    keys = set(obj)
    if keys == {"__array__", "shape", "data"}:
        dtype = np.dtype(obj["__array__"])
        shape = obj["shape"]
        if dtype.kind not in "biufc" or dtype.hasobject:
            raise WireError(f"dtype {dtype} is not allowed")
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise WireError("an array's shape must be a list of sizes")
        raw = base64.b64decode(obj["data"], validate=True)
        if len(raw) != dtype.itemsize * math.prod(shape):
            raise WireError("an array's data does not match its shape")
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if keys == {"__float__"}:
        value = float(obj["__float__"])
        if math.isfinite(value):
            raise WireError("a finite float is sent as a number")
        return value
    if keys == {"__complex__"}:
        re, im = (float(v) for v in obj["__complex__"])
        return complex(re, im)
    if keys == {"__unreadable__"}:
        if not isinstance(obj["__unreadable__"], str):
            raise WireError("an unreadable output names its type")
        return Unreadable(obj["__unreadable__"][:100])
    if any(k.startswith("__") and k.endswith("__") for k in keys):
        raise WireError(f"unknown object {sorted(keys)}")
    return obj


def decode(data: bytes):
    """The value that :func:`encode` made; raises :class:`WireError` for anything else."""
    if len(data) > MAX_BYTES:
        raise WireError(f"the message is larger than {MAX_BYTES} bytes")
    try:
        return json.loads(data.decode("utf-8"), object_hook=_revive)
    except WireError:
        raise
    except Exception as err:  # not UTF-8, not JSON, nested too deep, a bad dtype string...
        raise WireError(f"unreadable message: {type(err).__name__}") from None
