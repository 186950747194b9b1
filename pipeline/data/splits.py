"""Train / val / test membership per evaluation protocol, written as a long table for pandas.

The pickle's own split lists are the protocols whenever it has any (`official`, named by
`pipeline.data.protocols`). Only a pickle with no split at all falls back to UCF101's test groups
(`ucf101-groups`: g01-g07, g08-g14, g15-g21 for "1", "2", "3"), else to a seeded stratified
draw (`stratified`), and the summary says which ran. `val` is always carved out of `train` by
whole groups, per class, so clips of one source never sit on both sides.

`splits.json` (a `SplitsMeta`) records the protocols, how each was made, the grouping rule and
the manifest hash the splits were built for; `read_splits` refuses splits of another build or of
an older skpipe.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import SkpipeError
from pipeline.data.cache import Cache
from pipeline.data.protocols import (
    NUMBERED_RE,
    SUBSETS,
    Grouping,
    KeyPair,
    clip_groups,
    name_protocols,
    numbered_siblings,
    val_units,
)
from pipeline.files.atomic import atomic_write_bytes, atomic_write_text, check_target
from pipeline.files.location import MAX_JSON_BYTES, MAX_TABLE_BYTES, exists, is_url, read_bytes

SPLITS_NAME = "splits.parquet"
SPLITS_META_NAME = "splits.json"
SPLITS_SCHEMA = 2  # 1: splits numbered 1-3 (int8); 2: protocols by name (str), groups
FALLBACK_NAMES = ("1", "2", "3")
COLUMNS = ["sample", "frame_dir", "label", "split", "subset", "group"]


@dataclass(frozen=True)
class SplitConfig:
    val_fraction: float = 0.1
    test_fraction: float = 0.3  # only for the stratified fallback
    seed: int = 0
    group_by: str | None = None  # regex; its first capture group names a clip's group
    protocols: tuple[KeyPair, ...] = ()  # --protocol NAME=TRAINKEY,TESTKEY
    val_by: str | None = None  # view | subject | regex: val holds whole units, as the test does

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise SkpipeError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 < self.test_fraction < 1.0:
            raise SkpipeError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol of splits.parquet and how it was made."""

    name: str
    method: str  # official | ucf101-groups | stratified
    train_key: str | None = None
    test_key: str | None = None
    counts: dict[str, int] = field(default_factory=dict)  # subset -> clips


@dataclass(frozen=True)
class SplitsMeta:
    """splits.json: the contract between `build-splits` and every reader of the splits."""

    manifest_hash: str
    grouping: str
    protocols: tuple[Protocol, ...]
    val_fraction: float
    test_fraction: float
    seed: int
    unused_keys: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()  # protocols not built, and why (a split key listing no clip)
    table_sha256: str = ""  # of splits.parquet's bytes, checked whenever it is read
    val_by: str = ""  # the rule of --val-by ("" : val carved by groups, per class)
    siblings: str = ""  # clips alone whose names look cut from one video (protocols.numbered_siblings)
    schema_version: int = SPLITS_SCHEMA

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.protocols]

    def protocol(self, name: str) -> Protocol:
        for p in self.protocols:
            if p.name == str(name):
                return p
        raise SkpipeError(f"no protocol {name!r} in these splits; they have: {', '.join(self.names)}")

    def default_name(self) -> str:
        """The protocol a command uses when none is named: `1` (UCF101, HMDB51, JHMDB) where there
        is one, else the only one; several others are one line that names them."""
        if "1" in self.names or len(self.names) == 1:
            return "1" if "1" in self.names else self.names[0]
        raise SkpipeError(f"the cache has protocols {', '.join(self.names)}: name one with --split")

    def warnings(self) -> list[str]:
        """What will fail later: protocols with an empty val or test subset."""
        out = []
        for p in self.protocols:
            for s in ("val", "test"):
                if not p.counts.get(s):
                    later = ("train has no val to choose on and keeps its last epoch"
                             if s == "val" else "`skpipe evaluate --subset test` will refuse")
                    out.append(f"protocol {p.name} has no {s} clips; {later}")
        if self.unused_keys:
            out.append(f"split key(s) {', '.join(self.unused_keys)} not used (val is carved from train)")
        out += [f"{why}: left out" for why in self.left_out]
        if self.siblings:
            out.append(f"each clip is its own group, and {self.siblings}: if they were cut from one video, "
                       f"they land in train and test alike; keep them together with --group-by "
                       f"'{NUMBERED_RE.pattern}' (the stem names the group)")
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> SplitsMeta:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise SkpipeError(f"{where} is not valid JSON; re-run `skpipe build-splits --force`") from None
        if not isinstance(data, dict) or data.get("schema_version") != SPLITS_SCHEMA:
            raise SkpipeError(f"{where} was written by an older skpipe (splits numbered 1-3); "
                              "re-run `skpipe build-splits --force`")
        try:
            data["protocols"] = tuple(Protocol(**p) for p in data["protocols"])
            data["unused_keys"] = tuple(data.get("unused_keys", ()))
            data["left_out"] = tuple(data.get("left_out", ()))
            return cls(**data)
        except (TypeError, KeyError):
            raise SkpipeError(f"{where} is malformed; re-run `skpipe build-splits --force`") from None


def ucf101_test_groups(k: int) -> range:
    """UCF101's official test groups for split k: g01-g07, g08-g14, g15-g21."""
    return range(7 * k - 6, 7 * k + 1)


class EmptyKey(SkpipeError):
    """A split key with an empty list: its protocol cannot be built."""


def _official(index: pd.DataFrame, source: pd.DataFrame, pair: KeyPair) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) masks over samples from the pickle's own lists."""
    n = len(index)
    masks = []
    for key in (pair.train_key, pair.test_key):
        m = np.zeros(n, bool)
        m[source.loc[source["name"] == key, "sample"].to_numpy()] = True
        if not m.any():
            raise EmptyKey(f"protocol {pair.name}: split key {key} lists no clip")
        masks.append(m)
    both = masks[0] & masks[1]
    if both.any():
        fd = index["frame_dir"].to_numpy()[np.flatnonzero(both)[0]]
        raise SkpipeError(f"protocol {pair.name}: {fd} is in both {pair.train_key} and {pair.test_key}"
                          f" ({int(both.sum()):,} shared clips)")
    return masks[0], masks[1]


def _fallback_test(index: pd.DataFrame, name: str, grouping: Grouping, cfg: SplitConfig
                   ) -> tuple[np.ndarray, str]:
    """Test mask and method for a pickle with no split: UCF101 groups, else stratified by whole
    groups (per class, about `test_fraction` of its clips): clips of one source stay on one side."""
    k = int(name)
    if grouping.rule == "ucf101 gNN":
        group_ids = np.array([int(g[1:]) for g in grouping.groups])
        return np.isin(group_ids, list(ucf101_test_groups(k))), "ucf101-groups"
    rng = np.random.default_rng([cfg.seed, k])
    test = np.zeros(len(index), bool)
    for _, idx in index.groupby("label").indices.items():
        names, inverse, sizes = np.unique(grouping.groups[idx].astype(str), return_inverse=True,
                                          return_counts=True)
        order = rng.permutation(len(names))
        cum = np.concatenate([[0], np.cumsum(sizes[order])])  # clips when taking 0 .. len groups
        take = min(int(np.argmin(np.abs(cum - cfg.test_fraction * len(idx)))), len(names) - 1)
        test[idx[np.isin(inverse, order[:take])]] = True
    return test, "stratified"


def _carve_val(labels: np.ndarray, groups: np.ndarray, train: np.ndarray, seed: int, salt: int,
               fraction: float) -> np.ndarray:
    """Val mask: per class, whole groups drawn from train until about `fraction` of its clips, and
    one group at least where the class has two or more (a tiny set of own videos gets a val)."""
    val = np.zeros(len(labels), bool)
    if fraction == 0:
        return val
    rng = np.random.default_rng([seed, 100 + salt])
    rows = np.flatnonzero(train)
    for lab in np.unique(labels[rows]):
        mine = rows[labels[rows] == lab]
        units, inverse = np.unique(groups[mine].astype(str), return_inverse=True)
        if len(units) < 2:
            continue  # one group only: keep it in train
        order = rng.permutation(len(units))
        sizes = np.bincount(inverse, minlength=len(units))[order]
        cum = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # clips when taking 0 .. len-1 units
        take = max(1, int(np.argmin(np.abs(cum - fraction * len(mine)))))  # one group at least
        val[mine[np.isin(inverse, order[:take])]] = True
    return val


def _carve_val_units(units: np.ndarray, train: np.ndarray, seed: int, salt: int, fraction: float,
                     name: str) -> np.ndarray:
    """Val mask: whole units (views, subjects) of train, the same for every class, drawn until
    about `fraction` of train's clips (one unit at least, one left to train at least)."""
    rows = np.flatnonzero(train)
    names, inverse = np.unique(units[rows].astype(str), return_inverse=True)
    if len(names) < 2:
        only = names[0] if len(names) else "-"
        raise SkpipeError(f"protocol {name}: its train clips hold one unit only ({only}); --val-by needs "
                          "two, to keep one for training")
    order = np.random.default_rng([seed, 200 + salt]).permutation(len(names))
    sizes = np.bincount(inverse, minlength=len(names))[order]
    cum = np.cumsum(sizes)  # clips when taking 1 .. len units
    take = int(np.clip(np.argmin(np.abs(cum - fraction * len(rows))) + 1, 1, len(names) - 1))
    val = np.zeros(len(units), bool)
    val[rows[np.isin(inverse, order[:take])]] = True
    return val


def build_splits(cache: Cache, cfg: SplitConfig = SplitConfig()) -> tuple[pd.DataFrame, SplitsMeta]:
    """The long splits table (sample, frame_dir, label, split, subset, group) and its metadata."""
    index, source = cache.index, cache.source_splits
    frame_dirs = index["frame_dir"].to_numpy()
    labels = index["label"].to_numpy()
    grouping = clip_groups(frame_dirs.tolist(), cfg.group_by)
    units = val_units(frame_dirs.tolist(), cfg.val_by) if cfg.val_by else None
    keys = list(cache.manifest.source_splits)  # every key, an empty list's too
    if not keys and cfg.protocols:
        raise SkpipeError("--protocol names split keys, but the pickle has no split at all")
    pairs, unused = name_protocols(keys, cfg.protocols) if keys else ([], [])
    plan: list[tuple[str, np.ndarray, np.ndarray, str, KeyPair | None]] = []
    empty: list[str] = []
    for found in pairs:
        try:
            train, test = _official(index, source, found)
        except EmptyKey as e:  # left out, with a note, while another protocol remains
            empty.append(str(e))
            continue
        plan.append((found.name, train, test, "official", found))
    if pairs and not plan:
        raise SkpipeError(empty[0])
    if not keys:
        for name in FALLBACK_NAMES:
            test, method = _fallback_test(index, name, grouping, cfg)
            plan.append((name, ~test, test, method, None))
    parts, protocols = [], []
    for salt, (name, train, test, method, pair) in enumerate(plan, start=1):
        if units is not None:
            val = _carve_val_units(units.groups, train, cfg.seed, salt, cfg.val_fraction, name)
        else:
            val = _carve_val(labels, grouping.groups, train, cfg.seed, salt, cfg.val_fraction)
        subset = np.where(test, "test", np.where(val, "val", "train"))
        keep = np.flatnonzero(train | test)
        parts.append(pd.DataFrame({
            "sample": index["sample"].to_numpy()[keep], "frame_dir": frame_dirs[keep],
            "label": labels[keep], "split": name, "subset": subset[keep],
            "group": grouping.groups[keep].astype(str),
        }))
        counts = {s: int((subset[keep] == s).sum()) for s in SUBSETS}
        protocols.append(Protocol(name, method, pair.train_key if pair else None,
                                  pair.test_key if pair else None, counts))
    df = pd.concat(parts, ignore_index=True)[COLUMNS].astype({"split": "str", "group": "str"})
    meta = SplitsMeta(manifest_hash=cache.manifest_hash, grouping=grouping.rule,
                      protocols=tuple(protocols), val_fraction=cfg.val_fraction,
                      test_fraction=cfg.test_fraction, seed=cfg.seed, unused_keys=tuple(unused),
                      left_out=tuple(empty), val_by=units.rule if units is not None else "",
                      siblings=numbered_siblings(frame_dirs.tolist()) if grouping.rule == "clips" else "")
    return df, meta


def write_splits(cache: Cache, cfg: SplitConfig = SplitConfig(), force: bool = False
                 ) -> tuple[pd.DataFrame, SplitsMeta]:
    if is_url(cache.directory):
        raise SkpipeError(f"build splits on a local cache, then copy it to {cache.directory}")
    target = Path(cache.directory) / SPLITS_NAME
    check_target(target, force, "splits")
    df, meta = build_splits(cache, cfg)  # every refusal happens before anything is written
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    meta = replace(meta, table_sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    atomic_write_bytes(target, buf.getvalue())
    atomic_write_text(Path(cache.directory) / SPLITS_META_NAME, meta.to_json())
    return df, meta


def read_splits_meta(cache: Cache) -> SplitsMeta:
    """The splits' metadata, refusing splits built for another build of the cache."""
    path, meta_path = cache.path(SPLITS_NAME), cache.path(SPLITS_META_NAME)
    if not exists(path) or not exists(meta_path):
        raise SkpipeError(f"no splits in {cache.directory} (run `skpipe build-splits` first)")
    meta = SplitsMeta.from_json(read_bytes(meta_path, MAX_JSON_BYTES), str(meta_path))
    if not cache.built_as(meta.manifest_hash):
        raise SkpipeError(
            f"splits in {cache.directory} were built for another ingest of the cache; "
            "re-run `skpipe build-splits --force`"
        )
    return meta


def read_splits(cache: Cache) -> tuple[pd.DataFrame, SplitsMeta]:
    """The splits table, checked against its checksum, and its metadata."""
    meta = read_splits_meta(cache)
    data = read_bytes(cache.path(SPLITS_NAME), MAX_TABLE_BYTES)
    if meta.table_sha256 and hashlib.sha256(data).hexdigest() != meta.table_sha256:
        raise SkpipeError(f"{cache.path(SPLITS_NAME)} does not match its checksum in {SPLITS_META_NAME} "
                          "(damaged or edited); rebuild it with `skpipe build-splits --force`")
    try:
        return pd.read_parquet(io.BytesIO(data)), meta
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise SkpipeError(f"{cache.path(SPLITS_NAME)} is unreadable ({type(e).__name__}); rebuild it "
                          "with `skpipe build-splits --force`") from None


def splits_problems(cache: Cache) -> list[str]:
    """`info --verify`'s check of the protocols: where they were built, they read and match."""
    if not exists(cache.path(SPLITS_META_NAME)):
        return []
    try:
        read_splits(cache)
    except SkpipeError as e:
        return [str(e)]
    return []


def protocol_summary(meta: SplitsMeta) -> list[dict[str, Any]]:
    """One row per protocol for a summary table: name, method, keys, counts."""
    return [{"split": p.name, "method": p.method,
             "keys": f"{p.train_key} / {p.test_key}" if p.train_key else "-",
             **{s: p.counts.get(s, 0) for s in SUBSETS}} for p in meta.protocols]
