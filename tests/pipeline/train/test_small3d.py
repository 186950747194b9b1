"""The small-3D recipe's parts: min-max normalisation, rotation about chosen axes, random frame
sampling, a budget in samples, val by view / subject, and --init across a score channel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from models import build_model
from models.layouts import LAYOUTS, Skeleton
from pipeline import SkpipeError
from pipeline.data.protocols import val_units
from pipeline.data.splits import _carve_val_units
from pipeline.inputs.augment import Augment, draw, normalize, rotations_3d
from pipeline.inputs.batch import apply, minmax
from pipeline.inputs.transforms import random_indices
from pipeline.run.options import TrainConfig
from pipeline.run.recipes import RECIPES

K20 = LAYOUTS["kinect20"]


def _clips(b: int = 4, t: int = 30, seed: int = 0) -> np.ndarray:
    """(B, T, 20, 3) clips in metres, some frames padded with zeros at the end."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.4, (b, t, 20, 3)).astype(np.float32) + [0.2, 0.1, 3.0]
    x[1, 20:] = 0.0  # a shorter clip
    return x


def test_minmax_maps_each_axis_of_each_clip_to_minus_one_one():
    sk = Skeleton(K20, dims=3, score=False)
    x = torch.from_numpy(normalize(_clips(), "minmax", sk))
    y = minmax(x, 3)
    seen = (x != 0).any(-1)  # (B, T, V)
    for b in range(len(y)):
        pts = y[b][seen[b]]  # (n, 3)
        np.testing.assert_allclose(pts.amin(0).numpy(), -1.0, atol=1e-6)
        np.testing.assert_allclose(pts.amax(0).numpy(), 1.0, atol=1e-6)
    assert torch.all(y[1, 20:] == 0)  # padding stays zero
    # scale and translation disappear
    moved = x * 3.0 + 0.5 * (x != 0).any(-1, keepdim=True)  # scaled and shifted, missing joints kept
    np.testing.assert_allclose(minmax(moved, 3).numpy(), y.numpy(), atol=1e-5)


def test_minmax_centres_on_the_first_frames_spine_joint():
    sk = Skeleton(K20, dims=3, score=False)
    x = _clips()
    x[2, 0] = 0.0  # the body is first seen in frame 1
    out = normalize(x, "minmax", sk)
    spine = K20["spine"][1]
    np.testing.assert_allclose(out[0, 0, spine], 0.0, atol=1e-5)
    np.testing.assert_allclose(out[2, 1, spine], 0.0, atol=1e-5)
    assert np.any(out[0, 0, spine] != 0)  # still a seen joint, not a missing one
    np.testing.assert_allclose(out[0, 5] - out[0, 3], x[0, 5] - x[0, 3], atol=1e-5)  # a move only


def test_rotation_about_x_and_y_keeps_bone_lengths_and_leaves_z_angle_zero():
    sk = Skeleton(K20, dims=3, score=False)
    aug = Augment(rotate=60.0, rotate_axes="xy")
    params = draw(aug, np.random.default_rng(0), 4, 3)
    assert params is not None and params.linear is not None
    x = torch.from_numpy(_clips())
    y = apply(x, params, sk)
    parents = torch.as_tensor(K20["parents"])
    bone = lambda a: (a - a[:, :, parents]).norm(dim=-1)  # noqa: E731 - (B, T, V)
    np.testing.assert_allclose(bone(y)[0].numpy(), bone(x)[0].numpy(), rtol=1e-4, atol=1e-5)
    # only x and y turned: the same draws with z's angle zeroed reproduce the matrices
    angles = np.deg2rad(np.random.default_rng(0).uniform(-60, 60, (4, 3))) * [1, 1, 0]
    np.testing.assert_allclose(params.linear, rotations_3d(angles), atol=1e-9)
    with pytest.raises(SkpipeError, match="--rotate-axes"):
        Augment(rotate_axes="w")


def test_random_sampling_is_sorted_within_valid_frames_and_repeats_short_clips():
    idx = random_indices(np.array([100, 10]), 52, np.random.default_rng(0))
    assert idx.shape == (2, 52) and np.all(np.diff(idx, axis=1) >= 0)
    assert idx[0].max() < 100 and idx[1].max() < 10 and len(np.unique(idx[1])) <= 10


def test_a_budget_sets_repeat_from_the_train_sets_size():
    cfg = TrainConfig(model="stgcnpp", epochs=65, budget=66_000)
    for clips in (226, 504, 1020, 5000):
        r = cfg.budgeted(clips).repeat
        assert r == max(1, round(66_000 / (65 * clips)))
        assert abs(r * 65 * clips - 66_000) <= 65 * clips / 2 or r == 1  # the steps the budget implies
    assert cfg.budgeted(226).repeat == 4 and TrainConfig(model="stgcnpp").budgeted(226).repeat == 1
    with pytest.raises(SkpipeError, match="--budget"):
        TrainConfig(model="stgcnpp", budget=-1)
    assert TrainConfig(**{"model": "stgcnpp", **RECIPES["small3d"]}).normalize == "minmax"


def test_val_by_view_and_subject_take_whole_units_of_train():
    names = [f"a{a:02d}_s{s:02d}_e00_v{v:02d}" for a in range(1, 4) for s in range(1, 6) for v in (1, 2, 3)]
    train = np.array([not n.endswith("v03") for n in names])
    for by, unit in (("view", "v"), ("subject", "s")):
        units = val_units(names, by).groups
        val = _carve_val_units(units, train, 0, 1, 0.3, "xview")
        assert val.any() and not (val & ~train).any()
        held = set(units[val])
        assert not held & set(units[train & ~val])  # a unit is wholly in val or wholly in train
        assert all(u.startswith(unit) for u in held)
    ntu = ["S001C002P003R001A010", "S001C001P004R002A011"]
    assert list(val_units(ntu, "view").groups) == ["C002", "C001"]
    assert list(val_units(ntu, "subject").groups) == ["P003", "P004"]
    with pytest.raises(SkpipeError, match="do not all say a view"):
        val_units(["v_Foo_g01_c01"], "view")
    with pytest.raises(SkpipeError, match="one unit only"):
        _carve_val_units(val_units(names, "view").groups, np.array([n.endswith("v01") for n in names]),
                         0, 1, 0.3, "xview")


def test_build_splits_val_by_view_on_the_cli(tmp_path):
    from click.testing import CliRunner

    from cli.main import main
    from tests.conftest import write_pickle

    rng = np.random.default_rng(0)
    anns = [{"frame_dir": f"a{a:02d}_s{s:02d}_e00_v{v:02d}", "label": a - 1, "total_frames": 12,
             "keypoint": rng.normal(size=(1, 12, 20, 3)).astype(np.float32)}
            for a in (1, 2) for s in (1, 2, 3) for v in (1, 2, 3)]
    split = {"xview_train": [a["frame_dir"] for a in anns if not a["frame_dir"].endswith("v03")],
             "xview_val": [a["frame_dir"] for a in anns if a["frame_dir"].endswith("v03")]}
    raw = write_pickle(tmp_path / "ucla.pkl", {"split": split, "annotations": anns})
    cache = str(tmp_path / "c")
    r = CliRunner().invoke(main, ["ingest", str(raw), "--cache", cache, "--layout", "kinect20"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["build-splits", "--cache", cache, "--val-by", "view"])
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(tmp_path / "c" / "splits.parquet")
    views = {s: set(df.loc[df["subset"] == s, "frame_dir"].str[-3:]) for s in ("train", "val", "test")}
    assert views["test"] == {"v03"} and len(views["val"]) == 1 and not views["val"] & views["train"]
    r = CliRunner().invoke(main, ["build-splits", "--cache", cache, "--val-by", "subject", "--force"])
    assert r.exit_code == 0 and "val by subject" in r.output.replace("\n", " ")


@pytest.mark.parametrize(("theirs", "mine"), [(False, True), (True, False)])
def test_init_across_a_score_channel(tmp_path, theirs, mine):
    from pipeline.run.checkpoint import Checkpoint, save_checkpoint
    from pipeline.run.config import ModelArgs
    from pipeline.train.init import read_init, transfer

    src_sk, dst_sk = Skeleton(K20, dims=3, score=theirs), Skeleton(K20, dims=3, score=mine)
    torch.manual_seed(0)
    src = build_model("stgcnpp", 5, 0.0, src_sk, {})
    with torch.no_grad():  # data BN statistics that are not the defaults
        src.data_bn.running_mean.normal_()
        src.data_bn.running_var.uniform_(0.5, 2.0)
    save_checkpoint(Checkpoint.of(src, ModelArgs("stgcnpp", 5, 0.0, src_sk.to_dict())), tmp_path / "m.pt")
    init = read_init(str(tmp_path / "m.pt"), "stgcnpp", dst_sk)
    net = build_model("stgcnpp", 5, 0.0, dst_sk, init.arch)
    report = transfer(net, init, ("a",) * 5, dst_sk.channels)
    assert not report["skipped"] and report["channel_fitted"]
    w_src, w_dst = src.state_dict(), net.state_dict()
    for key in report["channel_fitted"]:
        if key.startswith("blocks.0.") and w_dst[key].dim() >= 2:
            np.testing.assert_array_equal(w_dst[key][:, :3].numpy(), w_src[key][:, :3].numpy())
            if mine:
                assert torch.all(w_dst[key][:, 3:] == 0), key
    with pytest.raises(SkpipeError, match="reads kinect20"):  # coordinates must agree
        read_init(str(tmp_path / "m.pt"), "stgcnpp", Skeleton(K20, dims=2, score=True))
    if not mine:  # the score channel dropped: nothing to compare the output with
        return
    x = torch.randn(2, 16, 20, 3)
    fed_src = torch.cat([x, torch.zeros(2, 16, 20, 1)], -1) if theirs else x
    fed_dst = torch.cat([x, torch.zeros(2, 16, 20, 1)], -1) if mine else x
    src.eval()
    net.eval()
    with torch.no_grad():
        np.testing.assert_allclose(net(fed_dst).numpy(), src(fed_src).numpy(), rtol=1e-4, atol=1e-5)
