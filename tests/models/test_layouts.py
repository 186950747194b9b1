"""Layouts as data: every built-in one is a tree over its joints with symmetric partitions, a
user's TOML file round-trips, and a broken one is refused in one line."""

import numpy as np
import pytest
import torch

from models import build_model, count_parameters
from models.graph import layout_adjacency, layout_partitions
from models.layouts import KINECT20, LAYOUTS, LayoutError, Skeleton, check_layout, read_layout


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_builtin_layouts_are_trees_with_symmetric_graphs(name):
    d = check_layout(LAYOUTS[name])
    v = len(d["joints"])
    assert len(d["parents"]) == v and len(set(d["joints"])) == v
    roots = [j for j, p in enumerate(d["parents"]) if j == p]
    assert len(roots) == 1  # one tree: every joint reaches the root (check_layout refuses cycles)
    a = layout_adjacency(d)
    np.testing.assert_allclose(a, a.T, atol=1e-7)
    parts = layout_partitions(d)  # (3, V, V): identity, inward, outward
    assert parts.shape == (3, v, v)
    assert np.array_equal(parts[1] > 0, (parts[2] > 0).T)  # outward is inward reversed
    for a, b in d["pairs"]:  # twins: the same name but for left / right
        x, y = d["joints"][a], d["joints"][b]
        assert {x.replace("left", "right"), x.replace("right", "left")} - {x} == {y}


def test_coco17_is_the_seeds_graph_and_counts():
    sk = Skeleton()
    assert sk.is_default and sk.to_dict() == {} and Skeleton.from_dict({}) == sk
    assert count_parameters(build_model("stgcn", 101)) == 935_973
    assert count_parameters(build_model("lstm", 101)) == 672_357


def test_user_layout_file_round_trip(tmp_path):
    path = tmp_path / "mine.toml"
    lines = ["name = \"mine\"", f"joints = {KINECT20['joints']!r}".replace("'", '"'),
             f"parents = {KINECT20['parents']}", f"center = {KINECT20['center']}",
             f"pairs = {KINECT20['pairs']}", f"spine = {KINECT20['spine']}",
             f"shoulders = {KINECT20['shoulders']}"]
    path.write_text("\n".join(lines) + "\n")
    mine = read_layout(path)
    assert {k: v for k, v in mine.items() if k != "name"} == {
        k: v for k, v in check_layout(KINECT20).items() if k != "name"}
    net = build_model("stgcnpp", 4, skeleton=Skeleton(mine, dims=3, score=False))
    assert net(torch.zeros(2, 8, 20, 3)).shape == (2, 4)


@pytest.mark.parametrize("edit, message", [
    ({"parents": [1, 0, 1]}, "cycle through joint 0"),
    ({"parents": [0, 0, 7]}, "not a joint index in 0..2"),
    ({"pairs": [[0, 3]]}, "not a joint index"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"center": 5}, "center must be a joint index"),
    ({"joints": ["a"]}, "joints must be a list of 2"),
])
def test_broken_layouts_are_one_line(edit, message):
    base = {"name": "t", "joints": ["a", "b", "c"], "parents": [0, 0, 1], "center": 0, "pairs": []}
    with pytest.raises(LayoutError, match=message) as e:
        check_layout({**base, **edit})
    assert "\n" not in str(e.value)


def test_not_toml_is_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text("name = [unclosed\n")
    with pytest.raises(LayoutError, match="not valid TOML"):
        read_layout(tmp_path / "bad.toml")


@pytest.mark.parametrize("model", ["stgcn", "stgcnpp"])
def test_two_persons_are_folded_and_averaged(model):
    """The network reads each person alone; the sample's logits are the mean over persons (the
    head is linear, so pooling features equals averaging logits)."""
    torch.manual_seed(0)
    sk = Skeleton(KINECT20, dims=3, score=False, persons=2)
    net = build_model(model, 5, skeleton=sk).eval()
    one = build_model(model, 5, skeleton=Skeleton(KINECT20, 3, False))
    assert count_parameters(net) == count_parameters(one)  # persons add no parameters
    x = torch.randn(3, 2, 16, 20, 3)  # (B, M, T, V, C)
    with torch.no_grad():
        both = net(x)
        alone = (net(x[:, 0]) + net(x[:, 1])) / 2
    torch.testing.assert_close(both, alone, rtol=1e-4, atol=1e-5)


def test_lstm_takes_any_skeleton():
    sk = Skeleton(LAYOUTS["ntu25"], dims=3, score=False, persons=2)
    net = build_model("lstm", 7, skeleton=sk)
    out = net(torch.randn(2, 2, 10, 25, 3), torch.tensor([10, 4]))
    assert out.shape == (2, 7)


def test_two_layouts_with_one_joint_count_are_named_never_picked(monkeypatch):
    from models.layouts import COCO17, LAYOUTS, LayoutError, detect_layout

    h36m = {**COCO17, "name": "h36m17"}
    monkeypatch.setitem(LAYOUTS, "h36m17", h36m)
    with pytest.raises(LayoutError, match="fit the layouts coco17 and h36m17; choose one with --layout"):
        detect_layout(17)
    assert detect_layout(21)["name"] == "handmp"
