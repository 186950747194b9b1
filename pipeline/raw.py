"""Read a PYSKL / MMAction2 2D skeleton pickle safely, and validate every annotation.

A pickle can run code when loaded, so the unpickler only resolves the globals that numpy arrays
and plain containers need; anything else is refused before it can be called. The file is hashed
while it is read (one pass), so the manifest can record what the cache was built from.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import pickletools
import re
import reprlib
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from pipeline import SkpipeError

ProgressFn = Callable[[str, int, int], None]

NUM_JOINTS = 17  # V: COCO keypoints
REQUIRED_KEYS = ("frame_dir", "label", "keypoint", "keypoint_score", "img_shape")
FRAME_DIR_RE = re.compile(r"^v_(?P<cls>.+)_g(?P<group>\d+)_c(?P<clip>\d+)$")

_np_core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): __import__("_codecs").encode,  # protocol-2 numpy byte payloads
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_mod}.multiarray", "_reconstruct")] = _np_core.multiarray._reconstruct
    _ALLOWED[(f"{_mod}.multiarray", "scalar")] = _np_core.multiarray.scalar
    _ALLOWED[(f"{_mod}.numeric", "_frombuffer")] = _np_core.numeric._frombuffer
for _name in ("set", "slice", "complex", "bytes", "range", "int", "float", "str", "list", "tuple",
              "dict", "bool"):  # not bytearray / frozenset: no valid annotation holds them
    _ALLOWED[("builtins", _name)] = getattr(__import__("builtins"), _name)
_ALLOWED.update({("__builtin__", n): f for (m, n), f in list(_ALLOWED.items()) if m == "builtins"})


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


MAX_NESTING = 100  # containers in containers; a PYSKL pickle nests about 8 deep
_REFUSED_OPS = {"BYTEARRAY8": "a bytearray", "NEXT_BUFFER": "an out-of-band buffer",
                "READONLY_BUFFER": "an out-of-band buffer", "PERSID": "a persistent id",
                "BINPERSID": "a persistent id", "INST": "an old-style instance",
                "OBJ": "an old-style instance"}
_MUTATE = {"APPEND": 1, "SETITEM": 2, "BUILD": 1}  # pop this many, update the container below
_MUTATE_MARKED = ("APPENDS", "SETITEMS", "ADDITEMS")


def check_structure(f: IO[bytes], limit: int = MAX_NESTING) -> None:
    """Walk the pickle's opcodes without building anything, and refuse what the unpickler must
    never see: containers nested deeper than `limit` (the C unpickler hashes a tuple used as a
    key recursively, and a 10^6-deep one overflows the C stack: a crash, not an error), and
    opcodes no skeleton pickle uses (a bytearray, out-of-band buffers, persistent ids).

    The depth of every stack item is tracked as the unpickler's stack would hold it: a new
    object is one deeper than the deepest item it takes, and APPEND / SETITEM(S) / BUILD deepen
    the container below them."""
    stack: list[int] = []  # depth of each item on the unpickler's stack
    marks: list[int] = []  # stack heights at each MARK
    memo: dict[int, int] = {}
    reader = types.SimpleNamespace(read=f.read, readline=f.readline)  # no tell(): no positions
    for op, arg, _pos in pickletools.genops(reader):  # type: ignore[arg-type]
        name = op.name
        if name in _REFUSED_OPS:
            raise pickle.UnpicklingError(f"refused {_REFUSED_OPS[name]} ({name}): no skeleton "
                                         "pickle holds one")
        if name == "MARK":
            marks.append(len(stack))
            continue
        if name == "STOP":
            return
        if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[len(memo) if name == "MEMOIZE" else int(arg or 0)] = stack[-1] if stack else 0
            continue
        if name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(int(arg or 0), 0))
            continue
        if name in _MUTATE or name in _MUTATE_MARKED:
            at = marks.pop() if name in _MUTATE_MARKED else len(stack) - _MUTATE[name]
            items, stack[at:] = stack[at:], []
            if stack:
                stack[-1] = max(stack[-1], 1 + max(items, default=-1))
                depth = stack[-1]
            else:
                depth = 0
        else:
            at = marks.pop() if any(b is pickletools.markobject for b in op.stack_before) \
                else len(stack) - len(op.stack_before)
            items, stack[max(at, 0):] = stack[max(at, 0):], []
            depth = 1 + max(items) if items else 0
            stack.extend([depth] * len(op.stack_after))
        if depth > limit:
            raise pickle.UnpicklingError(f"refused containers nested {limit}+ deep: no skeleton "
                                         "pickle nests so deep")


class _CountingReader(io.RawIOBase):
    """File wrapper that hashes what is read and reports how many bytes that is."""

    def __init__(self, f: io.BufferedReader, size: int, progress: ProgressFn | None,
                 hasher: Any) -> None:
        self._f, self._size, self._progress, self.hasher = f, size, progress, hasher
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b)
        self.hasher.update(memoryview(b)[:n])
        self.done += n
        if self._progress is not None:
            self._progress("read", self.done >> 20, max(1, self._size >> 20))
        return n


@dataclass(frozen=True)
class RawData:
    """A loaded pickle: its annotations, its named splits, and where it came from."""

    annotations: list[dict[str, Any]]
    splits: dict[str, list[str]]
    path: Path
    size: int
    sha256: str
    classes: list[str] | None = None  # a top-level `classes` list of names, where the pickle has one


def file_sha256(path: Path) -> str:
    """Content hash of a file, read in 16 MiB blocks (hashlib releases the GIL meanwhile)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def load_pickle(path: Path, progress: ProgressFn | None = None) -> tuple[Any, int, str]:
    """Unpickle `path` with the restricted unpickler; return (object, size, sha256).

    A first pass over the file checks its opcodes (`check_structure`) and hashes it; only then
    does the unpickler run, on a file whose structure is known to be safe to build.
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
        hasher = hashlib.sha256()
        with open(path, "rb") as f:  # one pass: opcodes checked, bytes hashed, progress shown
            scan = io.BufferedReader(_CountingReader(f, size, progress, hasher), 1 << 20)
            check_structure(scan)
            while scan.read(1 << 24):  # anything after STOP is part of the file's identity
                pass
        with open(path, "rb") as f:
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
    return obj, size, hasher.hexdigest()


def _where(i: int, ann: Any) -> str:
    fd = ann.get("frame_dir") if isinstance(ann, dict) else None
    return f"annotation {i} ({short_repr(fd)[1:-1]})" if isinstance(fd, str) else f"annotation {i}"


def validate_annotation(i: int, ann: Any) -> None:
    """Raise SkpipeError naming the sample if `ann` is not a usable 2D skeleton annotation."""
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
    kp, sc = ann["keypoint"], ann["keypoint_score"]
    if not isinstance(kp, np.ndarray) or not isinstance(sc, np.ndarray):
        raise SkpipeError(f"{where}: keypoint and keypoint_score must be numpy arrays")
    if kp.ndim != 4 or kp.shape[2] != NUM_JOINTS or kp.shape[3] != 2:
        raise SkpipeError(
            f"{where}: keypoint has shape {kp.shape}; expected (M, T, {NUM_JOINTS}, 2)"
        )
    if sc.shape != kp.shape[:3]:
        raise SkpipeError(
            f"{where}: keypoint_score has shape {sc.shape}; expected {kp.shape[:3]} to match keypoint"
        )
    if kp.dtype.kind != "f" or sc.dtype.kind != "f":
        raise SkpipeError(f"{where}: keypoint and keypoint_score must be floating point")
    if kp.shape[1] == 0:
        raise SkpipeError(f"{where}: keypoint has no frames (T = 0)")
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
    tf = ann.get("total_frames")
    if tf is not None and (isinstance(tf, bool | np.bool_) or not isinstance(tf, int | np.integer)
                           or not 0 <= tf < 2**31):
        raise SkpipeError(f"{where}: total_frames must be an integer in 0..2^31, got {short_repr(tf)}")


def read_raw(path: Path, progress: ProgressFn | None = None) -> RawData:
    """Load and fully validate a raw pickle (dict with `split`/`annotations`, a list, or one dict)."""
    path = Path(path)
    obj, size, digest = load_pickle(path, progress)
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
    for i, ann in enumerate(anns):
        validate_annotation(i, ann)
        fd = ann["frame_dir"]
        if fd in seen:
            raise SkpipeError(
                f"annotation {i} ({fd}): duplicate frame_dir (also annotation {seen[fd]})"
            )
        seen[fd] = i
    for name, members in splits.items():
        for fd in members:
            if fd not in seen:
                raise SkpipeError(f"{path}: split '{name}' names frame_dir {fd!r}, which has no annotation")
    return RawData(anns, splits, path.resolve(), size, digest, classes)


def parse_frame_dir(frame_dir: str) -> tuple[str | None, int, int]:
    """`v_<Class>_gNN_cNN` -> (class, group, clip); (None, -1, -1) when it does not parse."""
    m = FRAME_DIR_RE.match(frame_dir)
    if m is None:
        return None, -1, -1
    return m["cls"], int(m["group"]), int(m["clip"])
