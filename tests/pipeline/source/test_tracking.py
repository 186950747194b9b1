"""Regions round-trip, and the tracker keeps ids with their persons on synthetic scenes: two
persons crossing, one occluded for a few frames, one entering late, one leaving."""

from __future__ import annotations

import math

import numpy as np

from pipeline.source.tracking import (
    Person,
    Region,
    Tracker,
    TrackerConfig,
    iou,
    region_from_points,
    to_crop,
    to_image,
)


def test_a_point_mapped_into_the_crop_and_back_lands_where_it_was():
    rng = np.random.default_rng(0)
    for region in (Region(320, 240, 200, 0.0), Region(5, 470, 300, 0.7), Region(-40, 10, 90, -2.5)):
        pts = rng.uniform(-100, 700, (50, 2))  # at the border and beyond it too
        np.testing.assert_allclose(to_image(to_crop(pts, region, 256), region, 256), pts, atol=1e-8)
    r = Region(100, 100, 256, 0.0)
    np.testing.assert_allclose(to_image(np.array([[128.0, 128.0]]), r, 256), [[100, 100]])  # centre
    np.testing.assert_allclose(to_image(np.array([[0.0, 0.0]]), r, 256), [[-28, -28]])  # scale 1


def test_the_region_turns_the_body_upright_and_scales_it():
    up = region_from_points(np.array([100.0, 200.0]), np.array([100.0, 120.0]))
    assert abs(up.angle) < 1e-9 and math.isclose(up.size, 2 * 80 * 1.25)
    lying = region_from_points(np.array([100.0, 200.0]), np.array([180.0, 200.0]))  # head to the right
    assert math.isclose(lying.angle, math.pi / 2)
    # the crop's top centre is where the body's top is, above its centre
    top = to_image(np.array([[128.0, 128.0 - 128 / 1.25]]), lying, 256)[0]
    np.testing.assert_allclose(top, [180, 200], atol=1e-6)


# --- a synthetic world: persons are points with a body of 17 landmarks around them ---------------

BODY = np.stack([np.tile([-20.0, 20.0], 9)[:17], np.linspace(-60, 10, 17)], 1)  # (17, 2): a zigzag body


class World:
    """Persons' hip centres per frame (None: not visible). The fake landmark model finds the
    visible person nearest to a region's centre, within half its side; the fake detector finds
    every visible person."""

    def __init__(self, paths: dict[str, list[tuple[float, float] | None]]) -> None:
        self.paths, self.t = paths, 0

    def visible(self) -> dict[str, np.ndarray]:
        return {k: np.array(p[self.t]) for k, p in self.paths.items() if p[self.t] is not None}

    def landmarks(self, rgb: np.ndarray, region: Region) -> Person | None:
        near = [(np.hypot(*(c - [region.x, region.y])), k, c) for k, c in self.visible().items()]
        near = [n for n in near if n[0] < region.size / 2]
        if not near:
            return None
        _, _, c = min(near, key=lambda n: n[0])
        return Person(c + BODY, np.ones(17), c, c + [0, -64], 0.99)

    def detect(self, rgb: np.ndarray) -> list:
        return [(0.9, np.array([*(c - 40), *(c + 40)]), c, c + np.array([0, -64]))
                for c in self.visible().values()]


def _run(world: World, frames: int, cfg: TrackerConfig = TrackerConfig()) -> list[dict[int, str]]:
    """Per frame: track id -> the name of the person whose landmarks it holds."""
    tracker, out = Tracker(world.landmarks, world.detect, cfg), []
    for t in range(frames):
        world.t = t
        seen = {}
        for tr in tracker(np.zeros((1, 1, 3), np.uint8)):
            hip = tr.person.centre
            seen[tr.id] = next(k for k, c in world.visible().items() if np.allclose(c, hip))
        out.append(seen)
    return out


def _ids_stay(frames: list[dict[int, str]]) -> bool:
    owner: dict[int, str] = {}
    for seen in frames:
        for i, name in seen.items():
            if owner.setdefault(i, name) != name:
                return False
    return True


def test_two_persons_crossing_keep_their_ids():
    n = 60
    a = [(100 + 8 * t, 200.0) for t in range(n)]  # left to right
    b = [(580 - 8 * t, 215.0) for t in range(n)]  # right to left, crossing in the middle
    frames = _run(World({"a": a, "b": b}), n)
    assert _ids_stay(frames)
    # both found in every frame but where they overlap (one hides the other: at most 2 frames)
    assert sum(len(f) < 2 for f in frames) <= 2 and frames[-1] == {0: "a", 1: "b"}


def test_an_occluded_person_comes_back_under_its_id_and_a_late_one_gets_a_new_one():
    n = 50
    a = [(100 + 3 * t, 200.0) if not 20 <= t < 26 else None for t in range(n)]  # hidden 6 frames
    b = [None] * 30 + [(500.0, 220.0)] * 20  # enters at frame 30
    frames = _run(World({"a": a, "b": b}), n)
    assert _ids_stay(frames)
    assert all(f == {} for f in frames[20:26])
    assert frames[26] == {0: "a"} and frames[35] == {0: "a", 1: "b"}


def test_a_person_who_leaves_is_dropped_after_patience():
    n = 40
    a = [(100.0, 200.0)] * n
    b = [(400.0, 200.0)] * 10 + [None] * 30  # leaves at frame 10
    world = World({"a": a, "b": b})
    tracker = Tracker(world.landmarks, world.detect, TrackerConfig(patience=5))
    for t in range(n):
        world.t = t
        tracker(np.zeros((1, 1, 3), np.uint8))
    assert [t.id for t in tracker.tracks] == [0]


def test_iou():
    assert iou(np.array([0, 0, 2, 2.0]), np.array([1, 1, 3, 3.0])) == 1 / 7
    assert iou(np.array([0, 0, 1, 1.0]), np.array([2, 2, 3, 3.0])) == 0.0
