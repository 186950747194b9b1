"""Streams and augmentations against hand computations on tiny skeletons."""

import numpy as np
import pytest

from models.graph import LEFT_RIGHT, PARENTS
from pipeline import SkpipeError
from pipeline.inputs.augment import Augment, affine, augment, flip, normalize
from pipeline.inputs.features import InputSpec, bones, model_input, motion, stream


def skeleton(t=4, seed=0):
    """(1, T, 17, 3): positions in [0.2, 0.8], scores in (0, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.8, (1, t, 17, 3)).astype(np.float32)
    x[..., 2] = rng.uniform(0.1, 1.0, (1, t, 17))
    return x


def test_bones_by_hand():
    x = skeleton()
    b = bones(x)
    # left wrist (9) hangs from the left elbow (7); the nose is its own parent
    np.testing.assert_allclose(b[0, :, 9, :2], x[0, :, 9, :2] - x[0, :, 7, :2])
    np.testing.assert_allclose(b[0, :, 9, 2], (x[0, :, 9, 2] + x[0, :, 7, 2]) / 2)
    np.testing.assert_allclose(b[0, :, 0, :2], 0)
    assert PARENTS[11] == 0 and PARENTS[15] == 13  # PYSKL's COCO pairs: hips hang from the nose


def test_motion_stops_at_the_last_valid_frame():
    x = skeleton(t=6)
    x[0, 4:] = 0  # two frames of padding: valid = 4
    m = motion(x, np.array([4]))
    np.testing.assert_allclose(m[0, 1, 3, :2], x[0, 2, 3, :2] - x[0, 1, 3, :2])
    np.testing.assert_allclose(m[0, 1, 3, 2], (x[0, 2, 3, 2] + x[0, 1, 3, 2]) / 2)
    assert not m[0, 3:].any()  # frame 3 is the last valid one: no jump into the padding
    bm = stream(x, np.array([4]), "bm")
    np.testing.assert_allclose(bm[0, 0, 9, :2], bones(x)[0, 1, 9, :2] - bones(x)[0, 0, 9, :2], rtol=1e-5)
    with pytest.raises(SkpipeError, match="--feats"):
        stream(x, np.array([4]), "xyz")


def test_flip_mirrors_x_and_swaps_left_and_right():
    x = skeleton()
    f = flip(x, np.array([True]), 0.5)
    for left, right in LEFT_RIGHT:
        np.testing.assert_allclose(f[0, :, left, 0], 1.0 - x[0, :, right, 0], rtol=1e-6)
        np.testing.assert_allclose(f[0, :, left, 1:], x[0, :, right, 1:])
    np.testing.assert_allclose(f[0, :, 0, 0], 1.0 - x[0, :, 0, 0], rtol=1e-6)  # the nose stays
    np.testing.assert_array_equal(flip(x, np.array([False]), 0.5), x)


def test_rotation_by_90_degrees_maps_a_known_point():
    x = np.zeros((1, 1, 17, 3), np.float32)
    x[0, 0, 5] = (1.0, 0.0, 0.9)  # one joint at (1, 0) with score 0.9; the rest missing
    r = affine(x, np.array([np.pi / 2]), np.array([1.0]), np.zeros((1, 2)), np.zeros((1, 1, 1, 2)))
    np.testing.assert_allclose(r[0, 0, 5], (0.0, 1.0, 0.9), atol=1e-6)
    assert not r[0, 0, 6].any()  # a missing joint stays exactly zero
    s = affine(x, np.array([0.0]), np.array([2.0]), np.array([[0.5, 0.25]]), np.zeros((1, 1, 1, 2)))
    np.testing.assert_allclose(s[0, 0, 5], (2.5, 0.25, 0.9), atol=1e-6)


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
    x = np.repeat(skeleton(t=8), 3, axis=0)
    aug = Augment(flip=0.5, rotate=20, scale=0.2, shift=0.1)
    a1 = augment(x, aug, np.random.default_rng(1))
    np.testing.assert_array_equal(a1, augment(x, aug, np.random.default_rng(1)))
    assert not np.allclose(a1, x)
    spec = InputSpec(frames=4, augment=aug)
    e1, _ = model_input(x, np.full(3, 8), spec, None)
    e2, _ = model_input(x, np.full(3, 8), InputSpec(frames=4), None)
    np.testing.assert_array_equal(e1, e2)
    with pytest.raises(SkpipeError, match="--flip"):
        Augment(flip=2)
