"""Read a PYSKL / MMAction2 2D skeleton pickle safely, and validate every annotation.

A pickle can run code when loaded, so the unpickler only resolves the globals that numpy arrays
and plain containers need; anything else is refused before it can be called. The file is hashed
while it is read (one pass), so the manifest can record what the cache was built from.
"""

from __future__ import annotations

import collections
import hashlib
import io
import mmap
import pickle
import re
import reprlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import SkpipeError
from pipeline.source.pickle_scan import check_structure

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total): cli.ui.stage_progress draws it

REQUIRED_KEYS = ("frame_dir", "label", "keypoint")  # 2D adds keypoint_score and img_shape
MAX_PERSONS = 1000  # M: more than any crowd; bounds what a declared shape may ask for
MAX_TOTAL_FRAMES = 10_000_000  # T: ~4 days of video at 30 fps
FRAME_DIR_RE = re.compile(r"^v_(?P<cls>.+)_g(?P<group>\d+)_c(?P<clip>\d+)$")

_np_core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_mod}.multiarray", "_reconstruct")] = _np_core.multiarray._reconstruct
    _ALLOWED[(f"{_mod}.multiarray", "scalar")] = _np_core.multiarray.scalar
    _ALLOWED[(f"{_mod}.numeric", "_frombuffer")] = _np_core.numeric._frombuffer
_MATERIAL = (list, tuple, set, frozenset, dict, str, bytes)  # what a pickle holds, so bounded by its size


def _bounded(make: Any) -> Any:
    """A builtin callable that takes only values the pickle itself holds: `list(range(10**8))`,
    `bytes(10**9)` or `list(<a huge strided array>)` would build what no pickle of that size
    holds (resource bombs), so their arguments are refused."""
    def call(*args: Any) -> Any:
        if any(not isinstance(a, _MATERIAL) and not (isinstance(a, int | float) and make in _SCALARS)
               for a in args):
            raise pickle.UnpicklingError(f"refused {make.__name__}() of {type(args[0]).__name__}: "
                                         "a skeleton pickle builds nothing from numbers or arrays")
        return make(*args)
    return call


_SCALARS = (int, float, complex, bool, str)  # int("3"), float(1), complex(1, 2), str(5): small
for _name in ("set", "complex", "bytes", "int", "float", "str", "list", "tuple", "dict", "bool"):
    # not range / slice / bytearray: no valid annotation holds them
    _ALLOWED[("builtins", _name)] = _bounded(getattr(__import__("builtins"), _name))
_ALLOWED.update({("__builtin__", n): f for (m, n), f in list(_ALLOWED.items()) if m == "builtins"})


def _encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """`_codecs.encode` as numpy's protocol-2 pickles use it (a str to latin-1 bytes), and
    nothing else: other codecs can be nested or quadratic (hex, punycode)."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "latin_1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode(..., {short_repr(encoding)}): a skeleton "
                                     "pickle encodes only latin-1 text")
    return obj.encode(encoding, errors)


_ALLOWED[("_codecs", "encode")] = _encode


def _dtype(spec: Any, *args: Any) -> np.dtype[Any]:
    """numpy.dtype, refusing object dtypes: an object array rebuilt by `_reconstruct` and
    `__setstate__` can crash numpy, and no skeleton array holds Python objects."""
    dt = np.dtype(spec, *args)
    if dt.hasobject:
        raise pickle.UnpicklingError(f"refused an object dtype ({spec!r}): skeleton arrays are numeric")
    return dt


_ALLOWED[("numpy", "dtype")] = _dtype
MAX_LABEL = 10_000  # more classes than any skeleton dataset; bounds the class-name table


def short_repr(value: Any, limit: int = 60) -> str:
    """repr bounded in size and time, for error messages about untrusted values."""
    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlevel, r.maxlist, r.maxtuple, r.maxdict = limit, limit, 2, 4, 4, 4
    text = r.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load global '{module}.{name}': only numpy arrays and builtin "
                "containers are allowed in a skeleton pickle"
            ) from None


@dataclass(frozen=True)
class RawData:
    """A loaded pickle: its annotations, its named splits, and where it came from."""

    annotations: list[dict[str, Any]]
    splits: dict[str, list[str]]
    path: Path
    size: int
    sha256: str
    classes: list[str] | None = None  # a top-level `classes` list of names, where the pickle has one
    joints: int = 17  # V of every annotation
    dims: int = 2  # coordinates: 2 (pixels, with scores and img_shape) or 3 (e.g. metres)
    scores: bool = True  # whether keypoint_score is there (3D pickles usually have none)


def file_sha256(path: Path) -> str:
    """Content hash of a file, read in 16 MiB blocks (hashlib releases the GIL meanwhile)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def load_pickle(path: Path, progress: ProgressFn | None = None) -> tuple[Any, int, str]:
    """Unpickle `path` with the restricted unpickler; return (object, size, sha256).

    The file is mapped and its opcodes checked (`pipeline.source.pickle_scan`) while a second thread
    hashes it; only then does the unpickler run, on a file whose structure is safe to build.
    """
    path = Path(path)
    if not path.exists():
        raise SkpipeError(f"{path}: no such file")
    if path.is_dir():
        raise SkpipeError(f"{path}: is a directory, expected a pickle file")
    size = path.stat().st_size
    if size == 0:
        raise SkpipeError(f"{path}: empty file, not a pickle")
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data, \
                ThreadPoolExecutor(1) as pool:
            digest = pool.submit(lambda: hashlib.sha256(data).hexdigest())  # releases the GIL
            mib = max(1, size >> 20)
            check_structure(data, progress=None if progress is None else
                            lambda done: progress("read", done >> 20, mib))
            sha256 = digest.result()
        with open(path, "rb") as f:  # only now is anything built
            obj = _RestrictedUnpickler(io.BufferedReader(f, 1 << 20)).load()
    except pickle.UnpicklingError as e:
        msg = str(e)
        if msg.startswith("refused"):
            raise SkpipeError(f"{path}: {msg}") from None
        raise SkpipeError(f"{path}: not a valid pickle ({msg})") from None
    except EOFError:
        raise SkpipeError(f"{path}: truncated pickle (unexpected end of file)") from None
    except PermissionError:
        raise SkpipeError(f"{path}: permission denied") from None
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError, LookupError,
            OverflowError, RecursionError, UnicodeError) as e:
        raise SkpipeError(f"{path}: not a valid pickle ({type(e).__name__}: "
                          f"{short_repr(str(e), 120)})") from None
    return obj, size, sha256


def _where(i: int, ann: Any) -> str:
    fd = ann.get("frame_dir") if isinstance(ann, dict) else None
    return f"annotation {i} ({short_repr(fd)[1:-1]})" if isinstance(fd, str) else f"annotation {i}"


def validate_annotation(i: int, ann: Any) -> tuple[int, int, bool]:
    """(V, dims, has scores) of `ann`, or a SkpipeError naming the sample if it is not a usable
    skeleton annotation: keypoint (M, T, V, 2) in pixels with keypoint_score (M, T, V) and
    img_shape, or (M, T, V, 3) coordinates with or without scores."""
    where = _where(i, ann)
    if not isinstance(ann, dict):
        raise SkpipeError(f"{where}: expected a dict, got {type(ann).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in ann]
    if missing:
        raise SkpipeError(f"{where}: missing key(s) {', '.join(missing)}")
    if not isinstance(ann["frame_dir"], str) or not ann["frame_dir"]:
        raise SkpipeError(f"{where}: frame_dir must be a non-empty string")
    try:
        ann["frame_dir"].encode("utf-8")
    except UnicodeEncodeError:
        raise SkpipeError(f"{where}: frame_dir is not valid text (lone surrogates)") from None
    label = ann["label"]
    if isinstance(label, bool | np.bool_) or not isinstance(label, int | np.integer):
        raise SkpipeError(f"{where}: label must be an integer, got {short_repr(label)}")
    if not 0 <= label <= MAX_LABEL:
        raise SkpipeError(f"{where}: label must be in 0..{MAX_LABEL:,}, got {short_repr(label)}")
    kp = ann["keypoint"]
    if not isinstance(kp, np.ndarray):
        raise SkpipeError(f"{where}: keypoint must be a numpy array")
    if kp.ndim != 4 or kp.shape[3] not in (2, 3) or not 2 <= kp.shape[2] <= 1000:
        raise SkpipeError(f"{where}: keypoint has shape {kp.shape}; expected (M, T, V, 2) or (M, T, V, 3)")
    if kp.shape[0] > MAX_PERSONS or kp.shape[1] > MAX_TOTAL_FRAMES:
        raise SkpipeError(f"{where}: keypoint declares {kp.shape[0]:,} persons x {kp.shape[1]:,} frames, "
                          f"more than {MAX_PERSONS:,} x {MAX_TOTAL_FRAMES:,}")
    dims = kp.shape[3]
    sc = ann.get("keypoint_score")
    if sc is None and dims == 2:
        raise SkpipeError(f"{where}: missing key(s) keypoint_score (a 2D pickle has scores)")
    if sc is not None:
        if not isinstance(sc, np.ndarray):
            raise SkpipeError(f"{where}: keypoint and keypoint_score must be numpy arrays")
        if sc.shape != kp.shape[:3]:
            raise SkpipeError(
                f"{where}: keypoint_score has shape {sc.shape}; expected {kp.shape[:3]} to match keypoint")
        if sc.dtype.kind != "f":
            raise SkpipeError(f"{where}: keypoint and keypoint_score must be floating point")
    if kp.dtype.kind != "f":
        raise SkpipeError(f"{where}: keypoint and keypoint_score must be floating point")
    for arr in (kp, sc):
        if arr is not None and arr.size > 1 and not (arr.flags.c_contiguous or arr.flags.f_contiguous):
            raise SkpipeError(f"{where}: keypoint arrays must be plain arrays (these declare strides "
                              "that repeat their data)")
    if kp.shape[1] == 0:
        raise SkpipeError(f"{where}: keypoint has no frames (T = 0)")
    if dims == 2 or "img_shape" in ann:
        _check_img_shape(where, ann)
    tf = ann.get("total_frames")
    if tf is not None and (isinstance(tf, bool | np.bool_) or not isinstance(tf, int | np.integer)
                           or not 0 <= tf < 2**31):
        raise SkpipeError(f"{where}: total_frames must be an integer in 0..2^31, got {short_repr(tf)}")
    return kp.shape[2], dims, sc is not None


def _check_img_shape(where: str, ann: dict[str, Any]) -> None:
    if "img_shape" not in ann:
        raise SkpipeError(f"{where}: missing key(s) img_shape (2D pixels are scaled by it)")
    hw = ann["img_shape"]
    try:
        if len(hw) != 2 or any(isinstance(v, bool | np.bool_) for v in hw):
            raise TypeError
        h, w = (int(v) for v in hw)
        ok = all(float(v) == int(v) for v in hw)
    except (TypeError, ValueError, OverflowError):
        raise SkpipeError(f"{where}: img_shape must be (height, width), got {short_repr(hw)}") from None
    if not ok or not (0 < h < 2**31 and 0 < w < 2**31):
        raise SkpipeError(f"{where}: img_shape must be positive integers, got {short_repr(hw)}")


def read_raw(path: Path, progress: ProgressFn | None = None) -> RawData:
    """Load and fully validate a raw pickle (dict with `split`/`annotations`, a list, or one dict)."""
    path = Path(path)
    obj, size, digest = load_pickle(path, progress)
    return raw_from_object(obj, path, size, digest)


def raw_from_object(obj: Any, path: Path, size: int, digest: str) -> RawData:
    """An unpickled (or freshly built) pickle object, fully validated, as `RawData`."""
    splits: dict[str, list[str]] = {}
    classes = None
    if isinstance(obj, dict) and "annotations" in obj:
        named = obj.get("classes")
        if isinstance(named, list | tuple) and named and all(isinstance(c, str) for c in named):
            classes = list(named)
        anns = obj["annotations"]
        raw_splits = obj.get("split") or {}
        if not isinstance(raw_splits, dict) or not all(
            isinstance(v, list | tuple) for v in raw_splits.values()
        ):
            raise SkpipeError(f"{path}: 'split' must map split names to lists of frame_dir")
        splits = {str(k): list(v) for k, v in raw_splits.items()}
    elif isinstance(obj, dict) and "keypoint" in obj:
        anns = [obj]  # a single annotation, like PaddleVideo's example file
    elif isinstance(obj, list):
        anns = obj
    else:
        raise SkpipeError(
            f"{path}: expected a dict with 'annotations', a list of annotations, or one "
            f"annotation dict; got {type(obj).__name__}"
        )
    if not isinstance(anns, list):
        raise SkpipeError(f"{path}: 'annotations' must be a list, got {type(anns).__name__}")
    if not anns:
        raise SkpipeError(f"{path}: no annotations")
    seen: dict[str, int] = {}
    shape: tuple[int, int, bool] | None = None
    for i, ann in enumerate(anns):
        this = validate_annotation(i, ann)
        if shape is not None and this != shape:
            raise SkpipeError(f"{_where(i, ann)}: {skeleton_kind(*this)}, but the annotations before "
                              f"it are {skeleton_kind(*shape)}: one pickle holds one kind of skeleton")
        shape = this
        fd = ann["frame_dir"]
        if fd in seen:
            raise SkpipeError(
                f"annotation {i} ({fd}): duplicate frame_dir (also annotation {seen[fd]})"
            )
        seen[fd] = i
    for name, members in splits.items():
        for fd in members:
            if not isinstance(fd, str):
                raise SkpipeError(f"{path}: split {short_repr(name)} holds {short_repr(fd)}, "
                                  "not a frame_dir name")
            if fd not in seen:
                raise SkpipeError(f"{path}: split '{name}' names frame_dir {fd!r}, which has no annotation")
    assert shape is not None
    return RawData(anns, splits, path.resolve(), size, digest, classes, *shape)


def skeleton_kind(joints: int, dims: int, scores: bool) -> str:
    """'17 joints in 2D with scores': what a pickle's or a run's skeletons are, in words."""
    return f"{joints} joints in {dims}D {'with' if scores else 'without'} scores"


def parse_frame_dir(frame_dir: str) -> tuple[str | None, int, int]:
    """`v_<Class>_gNN_cNN` -> (class, group, clip); (None, -1, -1) when it does not parse."""
    m = FRAME_DIR_RE.match(frame_dir)
    if m is None:
        return None, -1, -1
    return m["cls"], int(m["group"]), int(m["clip"])
