"""Streams and augmentations (`pipeline.inputs.batch`, torch) against hand computations on tiny
skeletons, and normalisation (`augment`, numpy)."""

import numpy as np
import pytest
import torch

from models.graph import LEFT_RIGHT, PARENTS
from models.layouts import Skeleton
from pipeline import SkpipeError
from pipeline.inputs import batch
from pipeline.inputs.augment import Augment, draw, normalize, rotations_2d
from pipeline.inputs.features import InputSpec

COCO = Skeleton()


def skeleton(t=4, seed=0):
    """(1, T, 17, 3): positions in [0.2, 0.8], scores in (0, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.8, (1, t, 17, 3)).astype(np.float32)
    x[..., 2] = rng.uniform(0.1, 1.0, (1, t, 17))
    return x


def test_bones_by_hand():
    x = skeleton()
    b = batch.bones(torch.from_numpy(x), COCO).numpy()
    # left wrist (9) hangs from the left elbow (7); the nose is its own parent
    np.testing.assert_allclose(b[0, :, 9, :2], x[0, :, 9, :2] - x[0, :, 7, :2])
    np.testing.assert_allclose(b[0, :, 9, 2], (x[0, :, 9, 2] + x[0, :, 7, 2]) / 2)
    np.testing.assert_allclose(b[0, :, 0, :2], 0)
    assert PARENTS[11] == 0 and PARENTS[15] == 13  # PYSKL's COCO pairs: hips hang from the nose


def test_motion_stops_at_the_last_valid_frame():
    x = skeleton(t=6)
    x[0, 4:] = 0  # two frames of padding: valid = 4
    t, valid = torch.from_numpy(x), torch.tensor([4])
    m = batch.motion(t, valid, COCO).numpy()
    np.testing.assert_allclose(m[0, 1, 3, :2], x[0, 2, 3, :2] - x[0, 1, 3, :2])
    np.testing.assert_allclose(m[0, 1, 3, 2], (x[0, 2, 3, 2] + x[0, 1, 3, 2]) / 2)
    assert not m[0, 3:].any()  # frame 3 is the last valid one: no jump into the padding
    bm = batch.stream(t, valid, "bm", COCO).numpy()
    b = batch.bones(t, COCO).numpy()
    np.testing.assert_allclose(bm[0, 0, 9, :2], b[0, 1, 9, :2] - b[0, 0, 9, :2], rtol=1e-5)
    with pytest.raises(SkpipeError, match="--feats"):
        InputSpec(feats="xyz")


def test_flip_mirrors_x_and_swaps_left_and_right():
    x = skeleton()
    t, half = torch.from_numpy(x), torch.full((1, 1, 1, 2), 0.5)
    f = batch.flip(t, torch.tensor([True]), half, COCO).numpy()
    for left, right in LEFT_RIGHT:
        np.testing.assert_allclose(f[0, :, left, 0], 1.0 - x[0, :, right, 0], rtol=1e-6)
        np.testing.assert_allclose(f[0, :, left, 1:], x[0, :, right, 1:])
    np.testing.assert_allclose(f[0, :, 0, 0], 1.0 - x[0, :, 0, 0], rtol=1e-6)  # the nose stays
    np.testing.assert_array_equal(batch.flip(t, torch.tensor([False]), half, COCO).numpy(), x)


def test_rotation_by_90_degrees_maps_a_known_point():
    x = torch.zeros((1, 1, 17, 3))
    x[0, 0, 5] = torch.tensor((1.0, 0.0, 0.9))  # one joint at (1, 0) with score 0.9; the rest missing
    origin = torch.zeros((1, 1, 1, 2))
    quarter = torch.from_numpy(rotations_2d(np.array([np.pi / 2]))).float()
    r = batch.transform(x, quarter, torch.zeros((1, 2)), origin)
    torch.testing.assert_close(r[0, 0, 5], torch.tensor((0.0, 1.0, 0.9)), atol=1e-6, rtol=0)
    assert not r[0, 0, 6].any()  # a missing joint stays exactly zero
    s = batch.transform(x, 2 * torch.eye(2)[None], torch.tensor([[0.5, 0.25]]), origin)
    torch.testing.assert_close(s[0, 0, 5], torch.tensor((2.5, 0.25, 0.9)), atol=1e-6, rtol=0)


def test_normalisations():
    x = skeleton()
    x[0, 0, 3] = 0
    p = normalize(x, "pyskl")
    np.testing.assert_allclose(p[0, 1, 2, :2], 2 * x[0, 1, 2, :2] - 1, rtol=1e-6)
    assert not p[0, 0, 3].any()
    b = normalize(x, "body")
    present = x[..., 2] > 0
    np.testing.assert_allclose(b[..., :2][present].mean(axis=0), 0, atol=1e-6)
    with pytest.raises(SkpipeError, match="--normalize"):
        normalize(x, "zscore")


def test_augment_is_seeded_and_evaluation_never_augments():
    x = torch.from_numpy(np.repeat(skeleton(t=8), 3, axis=0))
    aug = Augment(flip=0.5, rotate=20, scale=0.2, shift=0.1)

    def augmented(seed):
        return batch.apply(x, draw(aug, np.random.default_rng(seed), 3, 2), COCO)

    torch.testing.assert_close(augmented(1), augmented(1), rtol=0, atol=0)
    assert not torch.allclose(augmented(1), x)
    assert not torch.allclose(augmented(1), augmented(2))
    e1, _ = batch.clips_input(x, np.full(3, 8), InputSpec(frames=4, augment=aug), 1)
    e2, _ = batch.clips_input(x, np.full(3, 8), InputSpec(frames=4), 1)
    torch.testing.assert_close(e1, e2, rtol=0, atol=0)
    with pytest.raises(SkpipeError, match="--flip"):
        Augment(flip=2)


def test_a_missing_joint_stays_zero_through_every_augmentation_and_stream():
    x = skeleton(t=6)
    x[0, 2, 4] = 0  # one missing joint
    x[0, 5] = 0  # padding after the last valid frame
    spec = InputSpec(frames=300, feats="j", augment=Augment(flip=1.0, rotate=30, scale=0.3, shift=0.2))
    y, _ = batch.from_rows(torch.from_numpy(x), np.array([5]), spec, np.random.default_rng(0))
    missing = (y[0] == 0).all(-1)  # (T, V)
    assert missing[2].sum() == 1 and missing[2, 3]  # the flip moved it to its pair, still zero
    assert missing[5].all() and missing.sum() == 1 + 17
