"""Splits: official ones reproduced, UCF101 groups, stratified fallback, val by whole groups."""

import pandas as pd
import pytest

from pipeline import SkpipeError
from pipeline.cache import ingest, open_cache
from pipeline.splits import SplitConfig, build_splits, read_splits, write_splits
from pipeline.synth import SynthConfig, make_dataset
from tests.conftest import make_ann, write_pickle


def test_official_splits_reproduced(synth_cache, tmp_path):
    cache = open_cache(synth_cache)
    df, meta = read_splits(cache)
    src = cache.source_splits
    for k in (1, 2, 3):
        assert meta["methods"][str(k)] == "official"
        part = df[df["split"] == k]
        official_test = set(src.loc[src["name"] == f"test{k}", "sample"])
        assert set(part.loc[part["subset"] == "test", "sample"]) == official_test
        official_train = set(src.loc[src["name"] == f"train{k}", "sample"])
        assert set(part.loc[part["subset"].isin(["train", "val"]), "sample"]) == official_train


def test_no_group_in_both_train_and_val(synth_cache):
    cache = open_cache(synth_cache)
    df, _ = read_splits(cache)
    df = df.merge(cache.index[["sample", "group"]], on="sample")
    for k in (1, 2, 3):
        part = df[df["split"] == k]
        units = part.groupby(["label", "group"])["subset"].nunique()
        assert (units == 1).all()
        val = part[part["subset"] == "val"]
        assert val["label"].nunique() == 5  # every class has some val
        frac = len(val) / len(part[part["subset"] != "test"])
        assert 0.05 < frac < 0.2


def test_ucf101_groups_when_no_official_split(tmp_path):
    data = make_dataset(SynthConfig(classes=3, per_class=30))
    ingest(write_pickle(tmp_path / "list.pkl", data["annotations"]), tmp_path / "cache")
    df, meta = build_splits(open_cache(tmp_path / "cache"))
    assert set(meta["methods"].values()) == {"ucf101-groups"}
    idx = open_cache(tmp_path / "cache").index.set_index("sample")
    for k, lo, hi in [(1, 1, 7), (2, 8, 14), (3, 15, 21)]:
        test = df[(df["split"] == k) & (df["subset"] == "test")]
        assert idx.loc[test["sample"], "group"].between(lo, hi).all()
        assert len(df[df["split"] == k]) == 90


def test_stratified_fallback_is_seeded_and_stratified(tmp_path):
    anns = [make_ann(f"clip{i:03d}", label=i % 4, seed=i) for i in range(200)]
    ingest(write_pickle(tmp_path / "s.pkl", anns), tmp_path / "cache")
    cache = open_cache(tmp_path / "cache")
    df, meta = build_splits(cache, SplitConfig(seed=3))
    df2, _ = build_splits(cache, SplitConfig(seed=3))
    pd.testing.assert_frame_equal(df, df2)
    assert meta["methods"]["1"] == "stratified"
    test = df[(df["split"] == 1) & (df["subset"] == "test")]
    assert (test["label"].value_counts() == 15).all()  # 0.3 of 50 per class
    assert not df[df["split"] == 1].duplicated("sample").any()
    s1 = set(test["sample"])
    s2 = set(df[(df["split"] == 2) & (df["subset"] == "test")]["sample"])
    assert s1 != s2


def test_splits_refuse_overwrite_and_stale(tmp_path):
    ingest(write_pickle(tmp_path / "a.pkl", [make_ann(f"v_A_g{g:02d}_c01", seed=g) for g in range(1, 9)]),
           tmp_path / "cache")
    cache = open_cache(tmp_path / "cache")
    write_splits(cache)
    with pytest.raises(SkpipeError, match="already exists"):
        write_splits(cache)
    write_splits(cache, force=True)
    (tmp_path / "cache" / "splits.json").write_text('{"manifest_hash": "other"}')
    with pytest.raises(SkpipeError, match="another ingest"):
        read_splits(cache)
    with pytest.raises(SkpipeError, match="--val-fraction"):
        SplitConfig(val_fraction=1.5)
