"""Evaluation protocols named from a pickle's split keys, and the groups clips come from.

A PYSKL pickle's `split` maps key -> frame_dirs. Keys pair up into protocols by name:
    train{k} / test{k}          -> "k"        (UCF101, HMDB51, JHMDB: "1", "2", "3")
    {p}_train / {p}_val|{p}_test -> "p"        (NTU60/120, NW-UCLA: "xsub", "xview", "xset")
    train / test|val            -> "default"  (FineGYM, Diving48, Penn Action)
`--protocol NAME=TRAINKEY,TESTKEY` names any other pair. A key that fits nothing is an error:
a protocol is never replaced silently by another.

Groups keep clips of one source together when `val` is carved out of `train`: UCF101's
`v_<Class>_gNN_cNN` groups, NTU's performer (`SsssCcccPpppRrrrAaaa`), NW-UCLA's performance
(`aAA_sSS_eEE_vVV`: its views together), a user's regex, or else each clip on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline import SkpipeError

SUBSETS = ("train", "val", "test")  # of every protocol; val is always carved out of train
_NUMBERED = (re.compile(r"^train(\d+)$"), re.compile(r"^test(\d+)$"))
_PREFIXED = (re.compile(r"^(.+)_train$"), re.compile(r"^(.+)_(?:val|test)$"))
UCF_GROUP_RE = re.compile(r"_g(\d+)_c\d+$")
NTU_NAME_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
NWUCLA_NAME_RE = re.compile(r"^(a\d+_s\d+_e\d+)_v\d+$")  # action, subject, take; the view last


@dataclass(frozen=True)
class KeyPair:
    """One protocol found in the pickle: its name and the two split keys it is made of."""

    name: str
    train_key: str
    test_key: str


def parse_protocol_option(text: str) -> KeyPair:
    """`NAME=TRAINKEY,TESTKEY` (the --protocol option) -> KeyPair."""
    name, sep, rest = text.partition("=")
    keys = rest.split(",")
    if not sep or not name.strip() or len(keys) != 2 or not all(k.strip() for k in keys):
        raise SkpipeError(f"--protocol {text!r}: expected NAME=TRAINKEY,TESTKEY")
    return KeyPair(name.strip(), keys[0].strip(), keys[1].strip())


def _side(key: str) -> tuple[str, str] | None:
    """(protocol name, 'train' | 'test') for a key that fits a naming pattern, else None."""
    for rx, side in zip(_NUMBERED, ("train", "test"), strict=True):
        if m := rx.match(key):
            return str(int(m[1])), side
    if key == "train":
        return "default", "train"
    if key in ("test", "val"):
        return "default", "test"
    for rx, side in zip(_PREFIXED, ("train", "test"), strict=True):
        if m := rx.match(key):
            return m[1], side
    return None


def name_protocols(keys: Iterable[str], explicit: Sequence[KeyPair] = ()) -> tuple[list[KeyPair], list[str]]:
    """Pair split keys into named protocols; return them (sorted by name) and unused keys.

    An unused key is the `val` list of a protocol that also has a `test` list (skpipe's own val
    is always carved out of train). Keys that fit no pattern, and protocols missing one side,
    are errors that say how to name the pair.
    """
    keys = list(keys)
    known = set(keys)
    pairs: dict[str, KeyPair] = {}
    taken: set[str] = set()
    for p in explicit:
        missing = [k for k in (p.train_key, p.test_key) if k not in known]
        if missing:
            raise SkpipeError(f"--protocol {p.name}: the pickle has no split key {', '.join(missing)} "
                              f"(it has: {', '.join(sorted(known)) or 'none'})")
        if p.train_key == p.test_key:
            raise SkpipeError(f"--protocol {p.name}: train and test are the same key {p.train_key}")
        if p.name in pairs:
            raise SkpipeError(f"--protocol {p.name} given twice")
        pairs[p.name] = p
        taken |= {p.train_key, p.test_key}
    sides: dict[str, dict[str, list[str]]] = {}
    unmatched = []
    for k in keys:
        if k in taken:
            continue
        found = _side(k)
        if found is None:
            unmatched.append(k)
        elif found[0] not in pairs:
            sides.setdefault(found[0], {}).setdefault(found[1], []).append(k)
    unused: list[str] = []
    for name, s in sides.items():
        if "train" not in s or "test" not in s:
            unmatched += s.get("train", []) + s.get("test", [])
            continue
        tests = sorted(s["test"], key=lambda k: (not k.endswith("test"), k))  # test before val
        pairs[name] = KeyPair(name, s["train"][0], tests[0])
        unused += tests[1:] + s["train"][1:]
    if unmatched:
        raise SkpipeError(
            f"split key(s) {', '.join(sorted(unmatched))} fit no protocol pattern (train{{k}}/test{{k}}, "
            "{p}_train/{p}_val|test, train/test); name each pair with --protocol NAME=TRAINKEY,TESTKEY")
    return sorted(pairs.values(), key=lambda p: (not p.name.isdigit(), p.name.zfill(8))), unused


@dataclass(frozen=True)
class Grouping:
    """How clips were grouped for carving val: one label per clip, and the rule used."""

    groups: np.ndarray  # (N,) str: clips with equal labels never straddle train and val
    rule: str


def clip_groups(frame_dirs: Sequence[str], group_by: str | None = None) -> Grouping:
    """Group clips by `group_by` (first capture group), else UCF101 gNN, else NTU performer,
    else NW-UCLA performance (`aAA_sSS_eEE`, all its views), else each clip alone."""
    fds = [str(f) for f in frame_dirs]
    if group_by is not None:
        try:
            rx = re.compile(group_by)
        except re.error as e:
            raise SkpipeError(f"--group-by {group_by!r} is not a valid regex ({e})") from None
        found = [rx.search(f) for f in fds]
        hits = sum(m is not None for m in found)
        if hits == 0:
            raise SkpipeError(f"--group-by {group_by!r} matches no clip (e.g. {fds[0]!r})")
        groups = [(m[1] if m.groups() else m[0]) if m else f"clip:{f}"
                  for m, f in zip(found, fds, strict=True)]
        alone = f", {len(fds) - hits:,} unmatched clips alone" if hits < len(fds) else ""
        return Grouping(np.array(groups, dtype=object), f"regex {group_by}{alone}")
    ucf = [UCF_GROUP_RE.search(f) for f in fds]
    if all(ucf):
        return Grouping(np.array([f"g{int(m[1]):02d}" for m in ucf if m], dtype=object), "ucf101 gNN")
    ntu = [NTU_NAME_RE.search(f) for f in fds]
    if all(ntu):
        return Grouping(np.array([f"P{m[3]}" for m in ntu if m], dtype=object), "ntu performer")
    ucla = [NWUCLA_NAME_RE.match(f) for f in fds]
    if all(ucla):  # the views of one performance stay together
        return Grouping(np.array([m[1] for m in ucla if m], dtype=object), "nw-ucla performance")
    return Grouping(np.array([f"clip:{f}" for f in fds], dtype=object), "clips")


NUMBERED_RE = re.compile(r"^(.+?)[_-]\d+$")  # `video_1`, `video-02`: a clip numbered within its source


def numbered_siblings(frame_dirs: Sequence[str]) -> str:
    """Where clips grouped alone share a stem with a numbered suffix (`video_1`, `video_2`), an
    example of such a stem: clips cut from one video, which a split by clip puts on both sides."""
    stems: dict[str, list[str]] = {}
    for f in frame_dirs:
        m = NUMBERED_RE.match(str(f))
        if m:
            stems.setdefault(m[1], []).append(str(f))
    shared = {s: fs for s, fs in stems.items() if len(fs) > 1}
    if not shared:
        return ""
    fs = next(iter(shared.values()))
    return f"{len(shared):,} name stem{'s' if len(shared) != 1 else ''} numbered like {fs[0]}, {fs[1]}"


# --val-by: the unit a protocol holds out, found in the names (NTU `C###` / `P###`, NW-UCLA
# `_v##` / `_s##`, MSR Action3D `_s##`); the first pattern matching every clip wins
VAL_UNITS: dict[str, tuple[re.Pattern[str], ...]] = {
    "view": (re.compile(r"S\d{3}(C\d{3})P\d{3}"), re.compile(r"_(v\d+)$")),
    "subject": (re.compile(r"C\d{3}(P\d{3})R\d{3}"), re.compile(r"(?:^|_)(s\d+)(?:_|$)")),
}


def val_units(frame_dirs: Sequence[str], val_by: str) -> Grouping:
    """Each clip's view or subject (or a regex's first capture group): val then takes whole
    units, as the protocol's test does. One line where the names hold no such unit."""
    fds = [str(f) for f in frame_dirs]
    patterns = VAL_UNITS.get(val_by)
    if patterns is None:
        try:
            patterns = (re.compile(val_by),)
        except re.error as e:
            raise SkpipeError(f"--val-by {val_by!r} is neither view, subject nor a valid regex "
                              f"({e})") from None
    for rx in patterns:
        found = [rx.search(f) for f in fds]
        if all(found):
            units = [(m[1] if m.groups() else m[0]) for m in found if m]
            return Grouping(np.array(units, dtype=object), f"val by {val_by} ({rx.pattern})")
    what = f"a {val_by}" if val_by in VAL_UNITS else f"a match of {val_by!r}"
    missing = next(f for f in fds if not any(rx.search(f) for rx in patterns))
    raise SkpipeError(f"--val-by {val_by}: clip names do not all say {what} (e.g. {missing[:80]!r}); "
                      "name it with a regex whose first group is the unit")
