"""Train / val / test membership for splits 1-3, written as a long table for pandas.

Per split k, the test set comes from the pickle's own `train{k}`/`test{k}` when present, else
from UCF101 groups (test = g01-g07, g08-g14, g15-g21 for k = 1, 2, 3), else from a seeded
stratified draw. `val` is then carved out of `train` by whole (class, group) units, so clips
of one source video never sit on both sides.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import SkpipeError
from pipeline.atomic import atomic_write_bytes, atomic_write_text, check_target
from pipeline.cache import Cache
from pipeline.location import exists, is_url, read_bytes

SPLITS_NAME = "splits.parquet"
SPLITS_META_NAME = "splits.json"
SPLIT_IDS = (1, 2, 3)
SUBSETS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    val_fraction: float = 0.1
    test_fraction: float = 0.3  # only for the stratified fallback
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise SkpipeError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 < self.test_fraction < 1.0:
            raise SkpipeError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")


def ucf101_test_groups(k: int) -> range:
    """UCF101's official test groups for split k: g01-g07, g08-g14, g15-g21."""
    return range(7 * k - 6, 7 * k + 1)


def _test_mask(index: pd.DataFrame, source: pd.DataFrame, k: int, cfg: SplitConfig
               ) -> tuple[np.ndarray, np.ndarray, str]:
    """(in_split, is_test) boolean masks over samples, and the method used."""
    n = len(index)
    names = set(source["name"])
    if f"train{k}" in names and f"test{k}" in names:
        train = np.zeros(n, bool)
        test = np.zeros(n, bool)
        train[source.loc[source["name"] == f"train{k}", "sample"].to_numpy()] = True
        test[source.loc[source["name"] == f"test{k}", "sample"].to_numpy()] = True
        if (train & test).any():
            fd = index["frame_dir"].to_numpy()[np.flatnonzero(train & test)[0]]
            raise SkpipeError(f"official split {k}: {fd} is in both train{k} and test{k}")
        return train | test, test, "official"
    groups = index["group"].to_numpy()
    if (groups >= 1).all():
        return np.ones(n, bool), np.isin(groups, list(ucf101_test_groups(k))), "ucf101-groups"
    rng = np.random.default_rng([cfg.seed, k])
    test = np.zeros(n, bool)
    for _, idx in index.groupby("label").indices.items():
        idx = rng.permutation(idx)
        test[idx[: int(round(cfg.test_fraction * len(idx)))]] = True
    return np.ones(n, bool), test, "stratified"


def _carve_val(index: pd.DataFrame, train: np.ndarray, k: int, cfg: SplitConfig) -> np.ndarray:
    """Val mask: per class, whole groups drawn from train until about val_fraction of its clips."""
    val = np.zeros(len(index), bool)
    if cfg.val_fraction == 0:
        return val
    rng = np.random.default_rng([cfg.seed, 100 + k])
    sub = index[train]
    # A clip whose group is unknown (-1) is a unit of its own.
    unit = np.where(sub["group"].to_numpy() >= 1, sub["group"].to_numpy(), -1 - sub["sample"].to_numpy())
    for _, rows in sub.assign(unit=unit).groupby("label"):
        units = rows.groupby("unit")["sample"].apply(np.asarray)
        if len(units) < 2:
            continue  # one group only: keep it in train
        order = rng.permutation(len(units))
        sizes = np.array([len(units.iloc[o]) for o in order])
        target = cfg.val_fraction * len(rows)
        cum = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # taking 0 .. len-1 units
        take = int(np.argmin(np.abs(cum - target)))
        for o in order[:take]:
            val[units.iloc[o]] = True
    return val


def build_splits(cache: Cache, cfg: SplitConfig = SplitConfig()) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The long splits table (sample, frame_dir, label, split, subset) and its metadata."""
    index, source = cache.index, cache.source_splits
    parts, methods = [], {}
    for k in SPLIT_IDS:
        in_split, test, method = _test_mask(index, source, k, cfg)
        train = in_split & ~test
        val = _carve_val(index, train, k, cfg)
        subset = np.where(test, "test", np.where(val, "val", "train"))
        keep = np.flatnonzero(in_split)
        parts.append(pd.DataFrame({
            "sample": index["sample"].to_numpy()[keep], "frame_dir": index["frame_dir"].to_numpy()[keep],
            "label": index["label"].to_numpy()[keep], "split": np.int8(k), "subset": subset[keep],
        }))
        methods[str(k)] = method
    df = pd.concat(parts, ignore_index=True).astype({"split": "int8"})
    counts = df.groupby(["split", "subset"]).size()
    meta = {
        "config": asdict(cfg), "manifest_hash": cache.manifest_hash, "methods": methods,
        "counts": {f"{s}/{sub}": int(c) for (s, sub), c in counts.items()},
    }
    return df, meta


def write_splits(cache: Cache, cfg: SplitConfig = SplitConfig(), force: bool = False
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    if is_url(cache.directory):
        raise SkpipeError(f"build splits on a local cache, then copy it to {cache.directory}")
    target = Path(cache.directory) / SPLITS_NAME
    check_target(target, force, "splits")
    df, meta = build_splits(cache, cfg)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(target, buf.getvalue())
    atomic_write_text(Path(cache.directory) / SPLITS_META_NAME, json.dumps(meta, indent=2) + "\n")
    return df, meta


def read_splits(cache: Cache) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The splits of `cache`, refusing ones built for another build of the cache."""
    path, meta_path = cache.path(SPLITS_NAME), cache.path(SPLITS_META_NAME)
    if not exists(path) or not exists(meta_path):
        raise SkpipeError(f"no splits in {cache.directory} (run `skpipe build-splits` first)")
    meta = json.loads(read_bytes(meta_path))
    if meta.get("manifest_hash") != cache.manifest_hash:
        raise SkpipeError(
            f"splits in {cache.directory} were built for another ingest of the cache; "
            "re-run `skpipe build-splits --force`"
        )
    return pd.read_parquet(path), meta


def split_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Clips per split x subset, as a small wide table."""
    t = df.groupby(["split", "subset"]).size().unstack(fill_value=0)
    return t.reindex(columns=[s for s in SUBSETS if s in t.columns])


