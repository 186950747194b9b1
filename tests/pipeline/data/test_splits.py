"""Splits: every protocol by name, official lists kept exactly, groups never straddling train/val."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline import SkpipeError
from pipeline.data.cache import ingest, open_cache
from pipeline.data.protocols import KeyPair, clip_groups, name_protocols, parse_protocol_option
from pipeline.data.splits import SplitConfig, build_splits, read_splits, write_splits
from pipeline.source.synth import SynthConfig, make_dataset
from tests.conftest import SHARED_DATA, make_ann, write_pickle


def cache_of(tmp_path, obj, name="c"):
    ingest(write_pickle(tmp_path / f"{name}.pkl", obj), tmp_path / name)
    return open_cache(tmp_path / name)


def named_set(names, split):
    anns = [make_ann(n, label=i % 3, seed=i) for i, n in enumerate(names)]
    return {"split": split, "annotations": anns}


def test_official_splits_reproduced(synth_cache):
    cache = open_cache(synth_cache)
    df, meta = read_splits(cache)
    src = cache.source_splits
    assert meta.names == ["1", "2", "3"]
    for k in ("1", "2", "3"):
        assert meta.protocol(k).method == "official"
        part = df[df["split"] == k]
        official_test = set(src.loc[src["name"] == f"test{k}", "sample"])
        assert set(part.loc[part["subset"] == "test", "sample"]) == official_test
        official_train = set(src.loc[src["name"] == f"train{k}", "sample"])
        assert set(part.loc[part["subset"].isin(["train", "val"]), "sample"]) == official_train


def test_no_group_in_both_train_and_val(synth_cache):
    cache = open_cache(synth_cache)
    df, meta = read_splits(cache)
    assert meta.grouping == "ucf101 gNN"
    for k in ("1", "2", "3"):
        part = df[df["split"] == k]
        units = part.groupby(["label", "group"])["subset"].nunique()
        assert (units == 1).all()
        val = part[part["subset"] == "val"]
        assert val["label"].nunique() == 5  # every class has some val
        frac = len(val) / len(part[part["subset"] != "test"])
        assert 0.05 < frac < 0.2


@pytest.mark.parametrize("keys, expected", [
    (["train1", "test1", "train2", "test2"], {"1": ("train1", "test1"), "2": ("train2", "test2")}),
    (["train", "test"], {"default": ("train", "test")}),
    (["train", "val"], {"default": ("train", "val")}),
    (["xsub_train", "xsub_val", "xview_train", "xview_val"],
     {"xsub": ("xsub_train", "xsub_val"), "xview": ("xview_train", "xview_val")}),
    (["xset_train", "xset_test"], {"xset": ("xset_train", "xset_test")}),
])
def test_protocol_naming_rule(keys, expected):
    pairs, unused = name_protocols(keys)
    assert {p.name: (p.train_key, p.test_key) for p in pairs} == expected and unused == []


def test_test_list_preferred_over_val_and_val_reported_unused():
    pairs, unused = name_protocols(["train", "val", "test"])
    assert [(p.train_key, p.test_key) for p in pairs] == [("train", "test")] and unused == ["val"]


def test_unmatched_keys_are_an_error_that_says_how_to_name_them():
    with pytest.raises(SkpipeError, match=r"fold_a, fold_b fit no protocol.*--protocol NAME=TRAIN"):
        name_protocols(["fold_a", "fold_b", "train1", "test1"])
    with pytest.raises(SkpipeError, match="train2 fit no protocol"):  # a train key with no test
        name_protocols(["train1", "test1", "train2"])
    pairs, _ = name_protocols(["fold_a", "fold_b"], [parse_protocol_option("a=fold_a,fold_b")])
    assert pairs == [KeyPair("a", "fold_a", "fold_b")]
    with pytest.raises(SkpipeError, match="no split key fold_c"):
        name_protocols(["fold_a", "fold_b"], [KeyPair("a", "fold_a", "fold_c")])
    for bad in ("a=fold_a", "=x,y", "a:x,y", "a=x,"):
        with pytest.raises(SkpipeError, match="NAME=TRAINKEY,TESTKEY"):
            parse_protocol_option(bad)


def test_ntu_and_nw_ucla_style_protocols(tmp_path):
    names = [f"S001C00{c}P00{p}R001A00{a}" for c in (1, 2) for p in (1, 2, 3, 4) for a in (1, 2, 3)]
    xsub_train = [n for n in names if "P001" in n or "P002" in n or "P003" in n]
    xview_train = [n for n in names if "C002" in n]
    split = {"xsub_train": xsub_train, "xsub_val": [n for n in names if n not in xsub_train],
             "xview_train": xview_train, "xview_val": [n for n in names if n not in xview_train]}
    cache = cache_of(tmp_path, named_set(names, split))
    df, meta = build_splits(cache, SplitConfig(val_fraction=0.4))
    assert meta.names == ["xsub", "xview"] and meta.grouping == "ntu performer"
    for p in ("xsub", "xview"):
        part = df[df["split"] == p]
        assert set(part.loc[part["subset"] == "test", "frame_dir"]) == set(split[f"{p}_val"])  # stays test
        assert set(part.loc[part["subset"] != "test", "frame_dir"]) == set(split[f"{p}_train"])
        fit = part[part["subset"] != "test"]
        assert (fit.groupby(["label", "group"])["subset"].nunique() == 1).all()  # performer whole
        assert (fit["subset"] == "val").any()
    assert set(df["group"]) == {"P001", "P002", "P003", "P004"}


def test_train_test_and_train_val_pickles_give_default(tmp_path):
    names = [f"clip{i:03d}" for i in range(30)]
    for test_key in ("test", "val"):
        cache = cache_of(tmp_path, named_set(names, {"train": names[:20], test_key: names[20:]}), test_key)
        df, meta = build_splits(cache)
        assert meta.names == ["default"] and meta.protocol("default").method == "official"
        assert meta.protocol("default").counts["test"] == 10 and meta.grouping == "clips"
        assert len(df) == 30


@pytest.mark.skipif(not (SHARED_DATA / "jhmdb14_gt_coco17.pkl").exists(),
                    reason="../shared/data (the real JHMDB / NW-UCLA sets) is not beside this clone")
def test_real_labelled_sets_keep_their_official_protocols(tmp_path):
    for name, sizes in (("jhmdb14_gt_coco17", {"1": (433, 176), "2": (433, 176), "3": (434, 175)}),
                        ("nw_ucla_coco17", {"xview": (1020, 464)})):
        ingest(SHARED_DATA / f"{name}.pkl", tmp_path / name)
        cache = open_cache(tmp_path / name)
        df, meta = build_splits(cache)
        assert meta.names == list(sizes)
        for p, (n_train, n_test) in sizes.items():
            c = meta.protocol(p).counts
            assert (c["train"] + c["val"], c["test"]) == (n_train, n_test)
        assert cache.manifest.class_names[0] in ("catch", "pick up with one hand")  # the pickle's own


def test_ucf101_groups_when_no_official_split(tmp_path):
    data = make_dataset(SynthConfig(classes=3, per_class=30))
    cache = cache_of(tmp_path, data["annotations"])
    df, meta = build_splits(cache)
    assert {p.method for p in meta.protocols} == {"ucf101-groups"}
    idx = cache.index.set_index("sample")
    for k, lo, hi in [("1", 1, 7), ("2", 8, 14), ("3", 15, 21)]:
        test = df[(df["split"] == k) & (df["subset"] == "test")]
        assert idx.loc[test["sample"], "group"].between(lo, hi).all()
        assert len(df[df["split"] == k]) == 90


def test_stratified_fallback_is_seeded_and_stratified(tmp_path):
    anns = [make_ann(f"clip{i:03d}", label=i % 4, seed=i) for i in range(200)]
    cache = cache_of(tmp_path, anns)
    df, meta = build_splits(cache, SplitConfig(seed=3))
    df2, _ = build_splits(cache, SplitConfig(seed=3))
    pd.testing.assert_frame_equal(df, df2)
    assert meta.protocol("1").method == "stratified"
    test = df[(df["split"] == "1") & (df["subset"] == "test")]
    assert (test["label"].value_counts() == 15).all()  # 0.3 of 50 per class
    assert not df[df["split"] == "1"].duplicated("sample").any()
    s2 = set(df[(df["split"] == "2") & (df["subset"] == "test")]["sample"])
    assert set(test["sample"]) != s2


def test_group_by_regex(tmp_path):
    names = [f"a{a:02d}_s{s:02d}_e00_v0{v}" for a in range(3) for s in range(6) for v in (1, 2)]
    split = {"xview_train": names, "xview_val": []}
    anns = [make_ann(n, label=int(n[1:3]), seed=i) for i, n in enumerate(names)]
    anns += [make_ann("other", label=0)]
    split["xview_val"] = ["other"]
    cache = cache_of(tmp_path, {"split": split, "annotations": anns})
    df, meta = build_splits(cache, SplitConfig(group_by=r"^(a\d+_s\d+)_", val_fraction=0.3))
    assert meta.grouping.startswith("regex") and "1 unmatched" in meta.grouping
    part = df[df["subset"] != "test"]
    assert (part.groupby("group")["subset"].nunique() == 1).all()  # both views of one performance
    assert (part["subset"] == "val").any()
    g = clip_groups(["x_1", "y_1"], r"(x)")
    assert list(g.groups) == ["x", "clip:y_1"]
    with pytest.raises(SkpipeError, match="not a valid regex"):
        clip_groups(names, "(")
    with pytest.raises(SkpipeError, match="matches no clip"):
        clip_groups(names, "zzz")


@pytest.mark.parametrize("split, cfg, pattern", [
    ({"train1": ["c0", "c1"], "test1": ["c1", "c2"]}, SplitConfig(), "c1 is in both train1 and test1"),
    ({"train": ["c0", "c1", "c2"], "test": []}, SplitConfig(), "split key test lists no clip"),
    ({"fold1": ["c0"], "fold2": ["c1"]}, SplitConfig(), "fit no protocol pattern"),
    ({"fold1": ["c0"], "fold2": ["c1"]}, SplitConfig(protocols=(KeyPair("f", "fold1", "fold3"),)),
     "no split key fold3"),
])
def test_bad_protocols_refused_and_nothing_written(tmp_path, split, cfg, pattern):
    cache = cache_of(tmp_path, named_set(["c0", "c1", "c2"], split))
    with pytest.raises(SkpipeError, match=pattern):
        write_splits(cache, cfg)
    assert not (tmp_path / "c" / "splits.parquet").exists()
    assert not (tmp_path / "c" / "splits.json").exists()


def test_splits_refuse_overwrite_stale_and_old_schema(tmp_path):
    cache = cache_of(tmp_path, [make_ann(f"v_A_g{g:02d}_c01", seed=g) for g in range(1, 9)])
    write_splits(cache)
    with pytest.raises(SkpipeError, match="already exists"):
        write_splits(cache)
    write_splits(cache, force=True)
    meta_path = tmp_path / "c" / "splits.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "manifest_hash": "other"}))
    with pytest.raises(SkpipeError, match="another ingest"):
        read_splits(cache)
    # what skpipe 0.1 wrote: int splits and a meta without a schema version
    meta_path.write_text(json.dumps({"manifest_hash": cache.manifest_hash, "methods": {"1": "x"}}))
    with pytest.raises(SkpipeError, match=r"older skpipe.*build-splits --force"):
        read_splits(cache)
    write_splits(cache, force=True)
    df, meta2 = read_splits(cache)
    assert meta2.names == ["1", "2", "3"] and df["split"].tolist()[0] == "1"
    with pytest.raises(SkpipeError, match="--val-fraction"):
        SplitConfig(val_fraction=1.5)


def test_empty_val_is_warned(tmp_path):
    cache = cache_of(tmp_path, named_set(["c0", "c1", "c2"], {"train": ["c0", "c1"], "test": ["c2"]}))
    _, meta = build_splits(cache, SplitConfig(val_fraction=0.0))
    assert any("no val clips" in w for w in meta.warnings())
    assert np.all([p.counts["test"] == 1 for p in meta.protocols])


def test_nw_ucla_views_of_one_performance_stay_together_by_default():
    names = [f"a{a:02d}_s{s:02d}_e{e:02d}_v{v:02d}" for a in (1, 2) for s in (1, 2) for e in (0, 1)
             for v in (1, 2, 3)]
    g = clip_groups(names)
    assert g.rule == "nw-ucla performance"
    assert len(set(g.groups)) == len(names) // 3  # three views, one group
    assert g.groups[names.index("a01_s02_e01_v03")] == g.groups[names.index("a01_s02_e01_v01")]
    assert clip_groups([*names, "other"]).rule == "clips"  # every name must fit


def test_a_protocol_whose_list_is_empty_is_left_out_and_the_others_built(tmp_path):
    names = [f"c{i}" for i in range(6)]
    split = {"train1": names[:4], "test1": names[4:], "train2": names[2:], "test2": []}
    cache = cache_of(tmp_path, named_set(names, split))
    df, meta = write_splits(cache)
    assert meta.names == ["1"] and set(df["split"]) == {"1"}
    assert any("split key test2 lists no clip: left out" in w for w in meta.warnings())
    assert read_splits(open_cache(tmp_path / "c"))[1].left_out == meta.left_out


def test_a_tiny_set_of_own_videos_gets_a_val_clip_per_class(tmp_path):
    """Two classes of three videos each, one clip a video: test takes one per class, val one."""
    anns = [make_ann(f"own_{c}_{i}", label=c, seed=3 * c + i) for c in range(2) for i in range(3)]
    cache = cache_of(tmp_path, anns)
    df, meta = write_splits(cache, SplitConfig(val_fraction=0.1))
    for p in meta.protocols:
        rows = df[df["split"] == p.name]
        per = rows.groupby(["label", "subset"]).size()
        assert all(per.get((c, "val"), 0) == 1 for c in range(2)), per


def test_clips_cut_from_one_video_get_a_hint_and_group_by_keeps_them_on_one_side(tmp_path):
    """Extracted clips named video_1, video_2, ...: split clip by clip they would sit in train and
    test alike; build-splits says so, and with the --group-by it names each video stays whole."""
    names = [f"v{v:02d}_{c}" for v in range(40) for c in range(1, 5)]
    anns = [make_ann(n, label=int(n[1:3]) % 2, seed=i) for i, n in enumerate(names)]
    cache = cache_of(tmp_path, anns)
    _, meta = build_splits(cache, SplitConfig(seed=0))
    (hint,) = [w for w in meta.warnings() if "numbered like" in w]
    assert "v00_1, v00_2" in hint and "--group-by" in hint
    regex = hint.split("--group-by ")[1].split(" ")[0].strip("'")
    df, meta = build_splits(cache, SplitConfig(seed=0, group_by=regex))
    assert not [w for w in meta.warnings() if "numbered like" in w]
    for split, part in df.groupby("split"):
        sides = part.assign(video=part["frame_dir"].str[:3]).groupby("video")["subset"].nunique()
        assert (sides == 1).all(), split  # every video on one side: train, val or test
        test = part[part["subset"] == "test"]
        assert 0.2 < len(test) / len(part) < 0.4 and test["label"].nunique() == 2
