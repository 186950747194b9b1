"""Hand-computed expectations for every preprocessing step."""

import numpy as np

from pipeline.data.preprocess import (
    choose_person,
    fit_frames,
    preprocess,
    preprocess_batch,
    scale_to_image,
    to_features,
)


def test_choose_person_highest_mean_score():
    score = np.zeros((3, 2, 17), np.float16)
    score[0] = 0.5
    score[1] = 0.6  # highest mean
    score[2, 0] = 1.0  # mean 0.5 over T x V
    assert choose_person(score) == 1


def test_choose_person_ties_take_the_lowest_slot():
    score = np.full((3, 4, 17), 0.25, np.float16)
    assert choose_person(score) == 0
    score[0] = 0.0
    assert choose_person(score) == 1


def test_choose_person_no_slots_and_nan_scores():
    assert choose_person(np.zeros((0, 5, 17), np.float16)) == -1
    score = np.full((2, 3, 17), 0.4, np.float32)
    score[0, 0, 0] = np.nan  # a NaN must not win the argmax
    score[0, 1] = 0.45
    assert choose_person(score) == 0  # NaN counts as 0: slot 0 mean is still higher
    score[0] = np.nan
    assert choose_person(score) == 1


def test_normalize_divides_by_width_and_height_without_clipping():
    xy = np.array([[[340.0, 256.0], [357.0, 358.4], [-17.0, 0.0]]], np.float16)  # (T=1, V=3, 2)
    out = scale_to_image(xy, (256, 340))
    np.testing.assert_allclose(out[0, 0], [1.0, 1.0])
    np.testing.assert_allclose(out[0, 1], [357 / 340, 358.4 / 256], rtol=1e-3)  # past the edge
    np.testing.assert_allclose(out[0, 2], [-17 / 340, 0.0])
    assert out.dtype == np.float32


def test_fit_frames_truncates_and_pads_at_the_end():
    x = np.arange(5, dtype=np.float32)[:, None]  # (T=5, 1)
    np.testing.assert_array_equal(fit_frames(x, 3)[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(fit_frames(x, 7)[:, 0], [0, 1, 2, 3, 4, 0, 0])
    assert np.shares_memory(fit_frames(x, 5), x)  # no copy when nothing changes


def test_to_features_order_and_nonfinite():
    xy = np.array([[[0.1, 0.2], [np.nan, 0.3], [0.4, np.inf]]], np.float32)  # (T=1, V=3, 2)
    score = np.array([[0.9, 0.8, 0.7]], np.float32)
    feat, bad = to_features(xy, score)
    np.testing.assert_allclose(feat[0, 0], [0.1, 0.2, 0.9])  # x, y, score
    np.testing.assert_array_equal(feat[0, 1], [0, 0, 0])  # NaN x -> 0 with score 0
    np.testing.assert_array_equal(feat[0, 2], [0, 0, 0])
    assert bad == 2


def test_preprocess_by_hand():
    kp = np.zeros((2, 4, 17, 2), np.float16)  # M=2, T=4
    sc = np.zeros((2, 4, 17), np.float16)
    kp[1, :, :, 0] = 34.0  # x
    kp[1, :, :, 1] = 128.0  # y
    kp[1, 2, 5] = [680.0, 512.0]  # past the edge: 2.0, 2.0
    sc[0] = 0.1
    sc[1] = 0.5
    feat, info = preprocess(kp, sc, (256, 340), max_frames=3)
    assert feat.shape == (3, 17, 3)
    assert (info.person, info.n_persons, info.frames, info.valid_frames) == (1, 2, 4, 3)
    np.testing.assert_allclose(feat[0, 0], [0.1, 0.5, 0.5])
    np.testing.assert_allclose(feat[2, 5], [2.0, 2.0, 0.5])
    feat, info = preprocess(kp, sc, (256, 340), max_frames=6)
    np.testing.assert_array_equal(feat[4:], 0)  # padded at the end
    np.testing.assert_allclose(feat[3, 0], [0.1, 0.5, 0.5])
    assert info.valid_frames == 4
    assert abs(info.mean_score - 0.5) < 1e-6


def test_preprocess_nobody_is_all_zero():
    feat, info = preprocess(np.zeros((0, 7, 17, 2), np.float16), np.zeros((0, 7, 17), np.float16),
                            (256, 340))
    assert feat.shape == (300, 17, 3) and not feat.any()
    assert (info.n_persons, info.person, info.valid_frames) == (0, -1, 7)


def test_batch_equals_clip_by_clip():
    rng = np.random.default_rng(0)
    clips = []
    for i, (m, t) in enumerate([(2, 10), (0, 5), (1, 400), (3, 300), (1, 7)]):
        kp = (rng.random((m, t, 17, 2)) * 400).astype(np.float16 if i != 4 else np.float32)
        sc = rng.random((m, t, 17)).astype(np.float16)
        clips.append((kp, sc, (256, 340) if i != 3 else (480, 640)))
    clips[3][0][1, 2, 3, 0] = np.nan  # not the chosen slot? counted only if chosen
    clips[2][0][0, 4, 5, 1] = np.inf
    out = np.full((6, 300, 17, 3), 7.0, np.float32)
    infos = preprocess_batch(clips, out)
    for j, (kp, sc, hw) in enumerate(clips):
        want, info = preprocess(kp, sc, hw)
        np.testing.assert_array_equal(out[j], want)
        assert infos[j] == info
    assert infos[2].nonfinite == 1
    assert (out[5] == 7.0).all()  # rows past the block are untouched
