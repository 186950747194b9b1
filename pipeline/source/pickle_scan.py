"""One pass over a pickle's opcodes, before anything is unpickled.

The restricted unpickler (`pipeline.source.raw`) decides which globals may be called; this pass refuses
what never reaches `find_class` and can still harm the process: containers nested deeper than a
bound (Python's C unpickler hashes a tuple used as a dict key recursively, and a 10^6-deep one
overflows the C stack: a crash, not an error), and opcodes no skeleton pickle uses (bytearrays,
out-of-band buffers, persistent ids, old-style instances).

The depth of every item is tracked as the unpickler's stack would hold it: a new object is one
deeper than the deepest item it takes, and APPEND(S) / SETITEM(S) / ADDITEMS / BUILD deepen the
container below them. The pass reads the bytes in place (a memory map), so it costs about a
microsecond per opcode: arrays are one opcode each however large.
"""

from __future__ import annotations

import mmap
import pickle
import pickletools
from collections.abc import Callable

MAX_NESTING = 100  # containers in containers; a PYSKL pickle nests about 8 deep
REFUSED = {"BYTEARRAY8": "a bytearray", "NEXT_BUFFER": "an out-of-band buffer",
           "READONLY_BUFFER": "an out-of-band buffer", "PERSID": "a persistent id",
           "BINPERSID": "a persistent id", "INST": "an old-style instance", "OBJ": "an old-style instance"}
_MUTATE = {"APPEND": 1, "SETITEM": 2, "BUILD": 1}  # items popped; the container below deepens
_MUTATE_MARKED = ("APPENDS", "SETITEMS", "ADDITEMS")  # items above the mark
_LENGTH_BYTES = {pickletools.TAKEN_FROM_ARGUMENT1: (1, False), pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
                 pickletools.TAKEN_FROM_ARGUMENT4U: (4, False), pickletools.TAKEN_FROM_ARGUMENT8U: (8, False)}


def _table() -> dict[int, tuple[str, int, bool, int, int]]:
    """opcode byte -> (name, argument size or length kind, pops to a mark, items popped, pushed)."""
    out = {}
    for op in pickletools.opcodes:
        marked = any(b is pickletools.markobject for b in op.stack_before)
        out[ord(op.code)] = (op.name, op.arg.n if op.arg is not None else 0, marked,
                             len(op.stack_before), len(op.stack_after))
    return out


_OPS = _table()
BytesScanned = Callable[[int], None]  # bytes of the pickle scanned so far


def check_structure(data: bytes | mmap.mmap, limit: int = MAX_NESTING,
                    progress: BytesScanned | None = None) -> None:
    """Raise `pickle.UnpicklingError` ("refused ...") for what the unpickler must never build;
    `EOFError` / `ValueError` for a truncated or malformed pickle. `progress(bytes)` every MiB."""
    stack: list[int] = []  # depth of each item on the unpickler's stack
    marks: list[int] = []  # stack heights at each MARK
    memo: dict[int, int] = {}
    fetched: set[int] = set()  # stack positions holding an object fetched from the memo (GET)
    pos, end, report = 0, len(data), 1 << 20
    while pos < end:
        code = data[pos]
        spec = _OPS.get(code)
        if spec is None:
            raise ValueError(f"unknown opcode {code:#04x} at byte {pos}")
        name, argn, marked, n_before, n_after = spec
        if name in REFUSED:
            raise pickle.UnpicklingError(f"refused {REFUSED[name]} ({name}): no skeleton pickle holds one")
        start = pos = pos + 1
        if argn >= 0:
            pos += argn
        elif argn == pickletools.UP_TO_NEWLINE:
            for _ in range(2 if name == "GLOBAL" else 1):  # GLOBAL: module and name lines
                newline = data.find(b"\n", pos)
                if newline < 0:
                    raise EOFError
                pos = newline + 1
        else:
            size, signed = _LENGTH_BYTES[argn]
            length = int.from_bytes(data[pos : pos + size], "little", signed=signed)
            if length < 0:
                raise ValueError(f"negative length at byte {pos}")
            pos += size + length
        if pos > end:
            raise EOFError
        if progress is not None and pos >= report:
            progress(pos)
            report = pos + (1 << 20)
        if name == "STOP":
            return
        if name == "MARK":
            marks.append(len(stack))
            continue
        if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            key = len(memo) if name == "MEMOIZE" else _memo_key(data, name, start, pos)
            if key > len(memo):  # picklers number the memo 0, 1, 2, ...; a far index grows it
                raise pickle.UnpicklingError(f"refused a memo index {key} out of sequence ({len(memo)} "
                                             "stored): it would make the unpickler allocate that many")
            memo[key] = stack[-1] if stack else 0
            continue
        if name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(_memo_key(data, name, start, pos), 0))
            fetched.add(len(stack) - 1)
            continue
        if name in _MUTATE or name in _MUTATE_MARKED:
            at = marks.pop() if name in _MUTATE_MARKED else len(stack) - _MUTATE[name]
            if at - 1 in fetched:  # a pickler fills a container once, when it is made
                raise pickle.UnpicklingError(f"refused {name} into a container fetched from the memo: "
                                             "no pickler writes that, and it could nest without bound")
            items, stack[max(at, 0):] = stack[max(at, 0):], []
            fetched.difference_update(range(max(at, 0), max(at, 0) + len(items)))
            if stack:
                stack[-1] = max(stack[-1], 1 + max(items, default=-1))
            depth = stack[-1] if stack else 0
        else:
            at = marks.pop() if marked else len(stack) - n_before
            items, stack[max(at, 0):] = stack[max(at, 0):], []
            if fetched:  # what replaces a popped item was not fetched from the memo
                fetched.difference_update(range(max(at, 0), max(at, 0) + len(items) + n_after))
            depth = 1 + max(items) if items else 0
            stack.extend([depth] * n_after)
        if depth > limit:
            raise pickle.UnpicklingError(f"refused containers nested {limit}+ deep: no skeleton "
                                         "pickle nests so deep")
    raise EOFError  # no STOP


def _memo_key(data: bytes | mmap.mmap, name: str, start: int, end: int) -> int:
    if name in ("PUT", "GET"):
        return int(bytes(data[start : end - 1]))  # decimal, then a newline
    return int.from_bytes(data[start:end], "little")
