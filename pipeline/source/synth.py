"""A synthetic UCF101-format 2D skeleton pickle: every path of the real data, no download.

What it imitates (shared/DESIGN.md, shared/data): float16 keypoints (M, T, 17, 2) in pixels and scores
(M, T, 17); img_shape (256, 340); T from 29 to well past 300 (mean ~186); M from 0 to crowds with
a long tail; detections sorted by score per frame, so slots are NOT tracked (the actor changes
slot when a distractor outscores it or when it is missed); distractors with lower scores;
coordinates past the image edge; `v_<Class>_gNN_cNN` names over 25 groups with official-style
train/test splits. Each class has its own limb motion (per-joint sinusoids), so it is learnable;
clips of one group share the person's size, place and tempo, as clips of one video do.
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import SkpipeError
from pipeline.files.atomic import atomic_write_bytes

UCF101_CLASSES: tuple[str, ...] = tuple("""
ApplyEyeMakeup ApplyLipstick Archery BabyCrawling BalanceBeam BandMarching BaseballPitch
Basketball BasketballDunk BenchPress Biking Billiards BlowDryHair BlowingCandles
BodyWeightSquats Bowling BoxingPunchingBag BoxingSpeedBag BreastStroke BrushingTeeth
CleanAndJerk CliffDiving CricketBowling CricketShot CuttingInKitchen Diving Drumming Fencing
FieldHockeyPenalty FloorGymnastics FrisbeeCatch FrontCrawl GolfSwing Haircut Hammering
HammerThrow HandstandPushups HandstandWalking HeadMassage HighJump HorseRace HorseRiding
HulaHoop IceDancing JavelinThrow JugglingBalls JumpingJack JumpRope Kayaking Knitting LongJump
Lunges MilitaryParade Mixing MoppingFloor Nunchucks ParallelBars PizzaTossing PlayingCello
PlayingDaf PlayingDhol PlayingFlute PlayingGuitar PlayingPiano PlayingSitar PlayingTabla
PlayingViolin PoleVault PommelHorse PullUps Punch PushUps Rafting RockClimbingIndoor
RopeClimbing Rowing SalsaSpin ShavingBeard Shotput SkateBoarding Skiing Skijet SkyDiving
SoccerJuggling SoccerPenalty StillRings SumoWrestling Surfing Swing TableTennisShot TaiChi
TennisSwing ThrowDiscus TrampolineJumping Typing UnevenBars VolleyballSpiking WalkingWithDog
WallPushups WritingOnBoard YoYo
""".split())
assert len(UCF101_CLASSES) == 101

IMG_H, IMG_W = 256, 340
NUM_GROUPS = 25
FULL_CLIPS = 13_320
# Rest pose of the COCO-17 joints, in person heights, hip centre at the origin, y down.
REST_POSE = np.array([
    [0.00, -0.42], [-0.03, -0.45], [0.03, -0.45], [-0.06, -0.43], [0.06, -0.43],  # face
    [-0.12, -0.28], [0.12, -0.28], [-0.16, -0.10], [0.16, -0.10], [-0.18, 0.05],  # arms
    [0.18, 0.05], [-0.08, 0.02], [0.08, 0.02], [-0.09, 0.25], [0.09, 0.25],  # hips, knees
    [-0.09, 0.48], [0.09, 0.48],  # ankles
], dtype=np.float32)  # (V, 2)
BODY_PARTS = ((0, 1, 2, 3, 4), (5, 7, 9), (6, 8, 10), (11, 13, 15), (12, 14, 16))


@dataclass(frozen=True)
class SynthConfig:
    classes: int = 10
    per_class: int = 40
    seed: int = 0
    full: bool = False  # UCF101-sized: 101 classes, 13,320 clips

    def __post_init__(self) -> None:
        if not 1 <= self.classes <= len(UCF101_CLASSES):
            raise SkpipeError(f"--classes must be in 1..{len(UCF101_CLASSES)}, got {self.classes}")
        if self.per_class < 1:
            raise SkpipeError(f"--per-class must be >= 1, got {self.per_class}")


def _clips_per_class(cfg: SynthConfig) -> list[int]:
    if not cfg.full:
        return [cfg.per_class] * cfg.classes
    base, extra = divmod(FULL_CLIPS, len(UCF101_CLASSES))
    return [base + (1 if c < extra else 0) for c in range(len(UCF101_CLASSES))]


@functools.lru_cache(maxsize=4096)
def _class_motion(seed: int, label: int) -> dict[str, np.ndarray | float]:
    """Per-class limb motion: which body parts move, how far, how fast, in which phase."""
    rng = np.random.default_rng([seed, 1, label])
    active = np.zeros(17, np.float32)
    for part in rng.choice(len(BODY_PARTS), size=rng.integers(1, 4), replace=False):
        active[list(BODY_PARTS[part])] = 1.0
    amp = rng.normal(0, 0.25, (17, 2)).astype(np.float32) * active[:, None]  # (V, 2)
    return {
        "amp": amp, "amp2": rng.normal(0, 0.08, (17, 2)).astype(np.float32) * active[:, None],
        "posture": rng.normal(0, 0.15, (17, 2)).astype(np.float32) * active[:, None],
        "phase": rng.uniform(0, 2 * np.pi, (17, 1)).astype(np.float32),
        "freq": float(rng.uniform(0.01, 0.04)),  # cycles per frame (25 fps: periods of 1-4 s)
        "drift": rng.normal(0, 0.0005, 2).astype(np.float32),  # person heights per frame
        "bob": rng.normal(0, 0.08, 2).astype(np.float32),  # whole-body oscillation (jumps, steps)
    }


def _pose_track(motion: dict[str, Any], t_count: int, phase0: float, speed: float,
                amp_scale: float) -> np.ndarray:
    """(T, V, 2) pose in person heights for one person following `motion`."""
    t = np.arange(t_count, dtype=np.float32)[:, None, None]  # (T, 1, 1)
    w = 2 * np.pi * motion["freq"] * speed
    arg = w * t + motion["phase"][None] + phase0  # (T, V, 1)
    offs = amp_scale * (motion["amp"][None] * np.sin(arg) + motion["amp2"][None] * np.sin(2 * arg)
                        + motion["bob"] * np.sin(arg[:, :1]))
    return REST_POSE[None] + motion["posture"][None] + offs + motion["drift"] * t  # (T, V, 2)


def make_clip(cfg: SynthConfig, label: int, group: int, clip: int) -> dict[str, Any]:
    """One annotation dict in the PYSKL format."""
    g_rng = np.random.default_rng([cfg.seed, 2, label, group])  # shared by clips of a group
    rng = np.random.default_rng([cfg.seed, 3, label, group, clip])
    height = g_rng.uniform(150, 230) * rng.uniform(0.95, 1.05)  # the actor is the main subject
    centre = np.array([g_rng.uniform(0.35, 0.65) * IMG_W, g_rng.uniform(0.5, 0.8) * IMG_H])
    speed = g_rng.uniform(0.8, 1.25) * rng.uniform(0.95, 1.05)
    t_count = int(np.clip(round(rng.lognormal(np.log(186) - 0.18, 0.6)), 29, 1800))
    actor = _pose_track(_class_motion(cfg.seed, label), t_count, rng.uniform(0, 2 * np.pi),
                        speed, rng.uniform(0.8, 1.2))
    n_distract = 0 if rng.random() < 0.35 else min(40, 1 + int(rng.pareto(0.9)))
    people = [actor * height + centre]  # list of (T, V, 2) pixel tracks
    scores = [np.clip(rng.uniform(0.6, 0.95, (1, 17)) + rng.normal(0, 0.05, (t_count, 17)), 0.05, 1)]
    present = [rng.random(t_count) > rng.uniform(0, 0.05)]  # the actor is missed now and then
    for _ in range(n_distract):
        other = _class_motion(cfg.seed + 7919, int(rng.integers(0, 256)))  # read-only, cached
        h = rng.uniform(40, 200)
        c = np.array([rng.uniform(-0.1, 1.1) * IMG_W, rng.uniform(0.2, 1.1) * IMG_H])
        people.append(_pose_track(other, t_count, rng.uniform(0, 6.3), 1.0, 0.5) * h + c)
        scores.append(np.clip(rng.uniform(0.15, 0.55, (1, 17)) + rng.normal(0, 0.08, (t_count, 17)), 0.01, 1))
        a, b = np.sort(rng.integers(0, t_count + 1, 2))
        present.append((np.arange(t_count) >= a) & (np.arange(t_count) < max(b, a + 1)))
    xy = np.stack(people) + rng.normal(0, 0.01 * height, (len(people), t_count, 17, 2))  # (P,T,V,2)
    xy = np.clip(xy, [-0.05 * IMG_W, -0.05 * IMG_H], [1.1 * IMG_W, 1.4 * IMG_H])  # past the edge, bounded
    sc = np.stack(scores)  # (P, T, V)
    pres = np.stack(present)  # (P, T)
    if rng.random() < 0.005:
        pres[:] = False  # nobody detected in the whole clip: M = 0
    # Detector order per frame: by noisy mean score, absent people last -> untracked slots.
    key = np.where(pres, sc.mean(-1) + rng.normal(0, 0.12, pres.shape), -np.inf)  # (P, T)
    order = np.argsort(-key, axis=0, kind="stable")  # (P, T)
    m_count = int(pres.sum(0).max())
    order = order[:m_count]  # (M, T)
    t_idx = np.arange(t_count)[None]
    keep = pres[order, t_idx]  # (M, T) slot holds somebody
    kp = np.where(keep[..., None, None], xy[order, t_idx], 0).astype(np.float16)  # (M, T, V, 2)
    ks = np.where(keep[..., None], sc[order, t_idx], 0).astype(np.float16)  # (M, T, V)
    return {
        "frame_dir": f"v_{UCF101_CLASSES[label]}_g{group:02d}_c{clip:02d}",
        "label": label, "img_shape": (IMG_H, IMG_W), "original_shape": (IMG_H, IMG_W),
        "total_frames": t_count, "keypoint": kp, "keypoint_score": ks,
    }


def make_dataset(cfg: SynthConfig) -> dict[str, Any]:
    """The whole pickle content: {'split': {...}, 'annotations': [...]}."""
    anns = []
    for label, count in enumerate(_clips_per_class(cfg)):
        per_group = np.full(NUM_GROUPS, count // NUM_GROUPS)
        extra = np.random.default_rng([cfg.seed, 4, label]).permutation(NUM_GROUPS)[: count % NUM_GROUPS]
        per_group[extra] += 1
        for g in range(1, NUM_GROUPS + 1):
            for c in range(1, int(per_group[g - 1]) + 1):
                anns.append(make_clip(cfg, label, g, c))
    split: dict[str, list[str]] = {}
    for k in (1, 2, 3):
        test = {f"g{g:02d}" for g in range(7 * k - 6, 7 * k + 1)}
        split[f"train{k}"] = [a["frame_dir"] for a in anns if a["frame_dir"].split("_")[-2] not in test]
        split[f"test{k}"] = [a["frame_dir"] for a in anns if a["frame_dir"].split("_")[-2] in test]
    return {"split": split, "annotations": anns}


def write_synth(path: Path, cfg: SynthConfig, force: bool = False) -> dict[str, Any]:
    """Write the synthetic pickle atomically; return a small summary."""
    data = make_dataset(cfg)
    atomic_write_bytes(Path(path), pickle.dumps(data, protocol=4), force=force)
    anns = data["annotations"]
    ms = np.array([a["keypoint"].shape[0] for a in anns])
    ts = np.array([a["keypoint"].shape[1] for a in anns])
    return {
        "path": str(path), "clips": len(anns), "classes": len({a["label"] for a in anns}),
        "bytes": Path(path).stat().st_size, "mean_frames": float(ts.mean()),
        "max_frames": int(ts.max()), "over_300": int((ts > 300).sum()),
        "max_persons": int(ms.max()), "mean_persons": float(ms.mean()), "no_person": int((ms == 0).sum()),
    }
