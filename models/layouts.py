"""Skeleton layouts as data: each is a plain dict, checked by `check_layout`, and a user's TOML
file of the same keys works everywhere a built-in one does.

Keys (indices are 0-based joint numbers):
    name       str
    joints     joint names, in the order of the pickle's V axis
    parents    each joint's parent on the skeleton tree (the root is its own parent): bones are
               joint minus parent (PYSKL's JointToBone)
    center     the joint the graph's partitions count distances from, and 3D normalisation centres on
    pairs      left/right joint pairs, swapped by a flip
    inward     (optional) the graph's tree as (joint, towards-centre) edges, when it differs from
               `parents` (COCO-17's, as PYSKL draws it); default: (j, parent[j])
    edges      (optional) ST-GCN's undirected edges; default: the `inward` tree
    spine      (optional, 3D normalisation) [bottom, top]: rotated onto the z axis
    shoulders  (optional, 3D normalisation) [right, left]: rotated onto the x axis

A `Skeleton` is what a cache holds: a layout, its coordinate dimension (2 or 3), whether a score
channel follows the coordinates, and how many persons each sample keeps.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Layout = dict[str, Any]

COCO17: Layout = {
    "name": "coco17",
    "joints": ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
               "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
               "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"],
    "parents": [0, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 0, 0, 11, 12, 13, 14],  # PYSKL's JointToBone
    "center": 0,
    "pairs": [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]],
    # PYSKL's COCO graph: edges pointing inward, toward the nose
    "inward": [[15, 13], [13, 11], [16, 14], [14, 12], [11, 5], [12, 6], [9, 7], [7, 5], [10, 8],
               [8, 6], [5, 0], [6, 0], [1, 0], [3, 1], [2, 0], [4, 2]],
    # the seed's ST-GCN graph (shared/DESIGN.md): nose-eyes-ears, arms, legs, shoulders-hips,
    # shoulder-shoulder, hip-hip, nose-shoulders
    "edges": [[0, 1], [0, 2], [1, 3], [2, 4], [5, 7], [7, 9], [6, 8], [8, 10], [11, 13], [13, 15],
              [12, 14], [14, 16], [5, 11], [6, 12], [5, 6], [11, 12], [0, 5], [0, 6]],
    "spine": [11, 5],
    "shoulders": [6, 5],
}

OPENPOSE18: Layout = {  # Kinetics-Skeleton (PYSKL's `openpose`)
    "name": "openpose18",
    "joints": ["nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
               "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
               "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear"],
    "parents": [1, 1, 1, 2, 3, 1, 5, 6, 2, 8, 9, 5, 11, 12, 0, 0, 14, 15],
    "center": 1,
    "pairs": [[2, 5], [3, 6], [4, 7], [8, 11], [9, 12], [10, 13], [14, 15], [16, 17]],
    "spine": [8, 1],
    "shoulders": [2, 5],
}

NTU25: Layout = {  # Kinect v2 (NTU RGB+D 60/120; PYSKL's `nturgb+d`)
    "name": "ntu25",
    "joints": ["spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow",
               "left_wrist", "left_hand", "right_shoulder", "right_elbow", "right_wrist",
               "right_hand", "left_hip", "left_knee", "left_ankle", "left_foot", "right_hip",
               "right_knee", "right_ankle", "right_foot", "spine_shoulder", "left_hand_tip",
               "left_thumb", "right_hand_tip", "right_thumb"],
    "parents": [1, 20, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 20, 7, 7, 11,
                11],
    "center": 20,
    "pairs": [[4, 8], [5, 9], [6, 10], [7, 11], [12, 16], [13, 17], [14, 18], [15, 19], [21, 23],
              [22, 24]],
    "spine": [0, 1],  # PYSKL's PreNormalize3D: zaxis = (0, 1), xaxis = (8, 4)
    "shoulders": [8, 4],
}

KINECT20: Layout = {  # Kinect v1 SDK order (NW-UCLA, UTKinect, MSR Action3D)
    "name": "kinect20",
    "joints": ["hip_center", "spine", "shoulder_center", "head", "left_shoulder", "left_elbow",
               "left_wrist", "left_hand", "right_shoulder", "right_elbow", "right_wrist",
               "right_hand", "left_hip", "left_knee", "left_ankle", "left_foot", "right_hip",
               "right_knee", "right_ankle", "right_foot"],
    "parents": [1, 2, 2, 2, 2, 4, 5, 6, 2, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18],
    "center": 2,
    "pairs": [[4, 8], [5, 9], [6, 10], [7, 11], [12, 16], [13, 17], [14, 18], [15, 19]],
    "spine": [0, 1],
    "shoulders": [8, 4],
}

MEDIAPIPE33: Layout = {  # MediaPipe pose landmarks
    "name": "mediapipe33",
    "joints": ["nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
               "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right",
               "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
               "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb",
               "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
               "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index"],
    "parents": [0, 0, 1, 2, 0, 4, 5, 3, 6, 0, 0, 0, 0, 11, 12, 13, 14, 15, 16, 15, 16, 15, 16, 11,
                12, 23, 24, 25, 26, 27, 28, 27, 28],
    "center": 0,
    "pairs": [[1, 4], [2, 5], [3, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16], [17, 18],
              [19, 20], [21, 22], [23, 24], [25, 26], [27, 28], [29, 30], [31, 32]],
    "spine": [23, 11],
    "shoulders": [12, 11],
}

HANDMP: Layout = {  # MediaPipe Hands' 21 landmarks (PYSKL's `handmp`: its hand-gesture models)
    "name": "handmp",
    "joints": ["wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_mcp", "index_pip",
               "index_dip", "index_tip", "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
               "ring_mcp", "ring_pip", "ring_dip", "ring_tip", "pinky_mcp", "pinky_pip", "pinky_dip",
               "pinky_tip"],
    "parents": [0, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19],  # PYSKL's edges
    "center": 0,
    "pairs": [],  # one hand: no left / right twins to swap
}

LAYOUTS: dict[str, Layout] = {d["name"]: d for d in (COCO17, OPENPOSE18, NTU25, KINECT20, MEDIAPIPE33,
                                                     HANDMP)}

# COCO-17 joint j is MediaPipe landmark MEDIAPIPE33_TO_COCO17[j]: nose, eyes, ears, shoulders,
# elbows, wrists, hips, knees, ankles (MediaPipe's eye centre and ear, not the inner/outer points)
MEDIAPIPE33_TO_COCO17 = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
KEYS = ("name", "joints", "parents", "center", "pairs", "inward", "edges", "spine", "shoulders")
MAX_JOINTS = 1000


class LayoutError(ValueError):
    """A layout that cannot be used (the message says which key and why, in one line)."""


def _joints(key: str, values: list[Any], v: int) -> list[int]:
    for i in values:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < v:
            raise LayoutError(f"{key} holds {i!r}, not a joint index in 0..{v - 1}")
    return list(values)


def _index_list(layout: Layout, key: str, v: int, length: int | None = None) -> list[int]:
    value = layout[key]
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise LayoutError(f"{key} must be a list of {length or 'some'} joint indices")
    return _joints(key, value, v)


def _pairs(layout: Layout, key: str, v: int) -> list[list[int]]:
    value = layout[key]
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise LayoutError(f"{key} must be a list of [joint, joint] pairs")
    return [_joints(key, p, v) for p in value]


def check_layout(layout: Any) -> Layout:
    """`layout` validated and in canonical form (lists, optional keys filled), or LayoutError:
    unknown keys, indices out of range, a parent tree with a cycle or a joint it cannot reach."""
    if not isinstance(layout, dict):
        raise LayoutError("a layout is a table of keys")
    unknown = sorted(set(layout) - set(KEYS))
    if unknown:
        raise LayoutError(f"unknown key {unknown[0]!r}; a layout has {', '.join(KEYS)}")
    for key in ("name", "joints", "parents", "center", "pairs"):
        if key not in layout:
            raise LayoutError(f"missing key {key!r}")
    name, joints = layout["name"], layout["joints"]
    if not isinstance(name, str) or not name or len(name) > 64 or not name.isprintable():
        raise LayoutError("name must be a short printable string")
    if (not isinstance(joints, list) or not 2 <= len(joints) <= MAX_JOINTS
            or not all(isinstance(j, str) and j.isprintable() for j in joints)):
        raise LayoutError(f"joints must be a list of 2 to {MAX_JOINTS} joint names")
    v = len(joints)
    parents = _index_list(layout, "parents", v, v)
    center = layout["center"]
    if not isinstance(center, int) or isinstance(center, bool) or not 0 <= center < v:
        raise LayoutError(f"center must be a joint index in 0..{v - 1}")
    _tree_reaches_every_joint(parents, "parents")
    out: Layout = {"name": name, "joints": list(joints), "parents": parents, "center": center,
                   "pairs": _pairs(layout, "pairs", v)}
    out["inward"] = (_pairs(layout, "inward", v) if "inward" in layout
                     else [[j, p] for j, p in enumerate(parents) if j != p])
    out["edges"] = _pairs(layout, "edges", v) if "edges" in layout else [list(e) for e in out["inward"]]
    for key in ("spine", "shoulders"):
        if key in layout:
            out[key] = _index_list(layout, key, v, 2)
    return out


def _tree_reaches_every_joint(parents: list[int], key: str) -> None:
    """Every joint reaches a root (its own parent) without meeting itself again."""
    for j in range(len(parents)):
        seen, k = {j}, j
        while parents[k] != k:
            k = parents[k]
            if k in seen:
                raise LayoutError(f"{key} has a cycle through joint {j}")
            seen.add(k)


def read_layout(path: Path) -> Layout:
    """A user's layout from a TOML file (at most 1 MB), checked."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"no layout file at {path}")
    if path.stat().st_size > 1 << 20:
        raise LayoutError(f"{path} is larger than any layout (1 MB)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise LayoutError(f"{path} is not valid TOML ({str(e).splitlines()[0][:80]})") from None
    return check_layout(data)


def detect_layout(v: int) -> Layout:
    """The one built-in layout with `v` joints, or LayoutError: none has (the known ones are
    listed), or several have (both are named: `--layout` chooses; nothing is picked silently)."""
    fits = layouts_for(v)
    if len(fits) > 1:
        raise LayoutError(f"{v} joints fit the layouts {' and '.join(fits)}; choose one with --layout NAME")
    if not fits:
        known = ", ".join(f"{k} ({len(d['joints'])})" for k, d in LAYOUTS.items())
        raise LayoutError(f"{v} joints match no built-in layout ({known}); give --layout FILE.toml")
    return check_layout(LAYOUTS[fits[0]])


def layouts_for(v: int) -> list[str]:
    """The built-in layouts with `v` joints."""
    return [name for name, d in LAYOUTS.items() if len(d["joints"]) == v]


@dataclass(frozen=True)
class Skeleton:
    """What each sample of a cache holds: (M, T, V, C) with V from the layout and C = dims
    coordinates, plus a score channel when `score` (2D pickles carry one; 3D ones do not)."""

    layout: Layout = field(default_factory=lambda: check_layout(COCO17))
    dims: int = 2
    score: bool = True
    persons: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", check_layout(self.layout))
        if self.dims not in (2, 3):
            raise LayoutError(f"coordinates must be 2D or 3D, not {self.dims}D")
        if self.persons not in (1, 2):
            raise LayoutError(f"persons must be 1 or 2, got {self.persons}")

    @property
    def num_joints(self) -> int:
        return len(self.layout["joints"])

    @property
    def channels(self) -> int:
        return self.dims + int(self.score)

    @property
    def is_default(self) -> bool:
        """The seed's: COCO-17, 2D with scores, one person; its cache is (N, 300, 17, 3)."""
        return self == Skeleton()

    def describe(self) -> str:
        return (f"{self.layout['name']} · {self.dims}D{' + score' if self.score else ''} · "
                f"{self.persons} person{'s' if self.persons > 1 else ''}")

    def to_dict(self) -> dict[str, Any]:
        """{} for the default, so caches, runs and checkpoints of skpipe 0.1 read as they were."""
        if self.is_default:
            return {}
        return {"layout": self.layout, "dims": self.dims, "score": self.score, "persons": self.persons}

    @classmethod
    def from_dict(cls, data: Any) -> Skeleton:
        if not data:
            return cls()
        if not isinstance(data, dict) or set(data) - {"layout", "dims", "score", "persons"}:
            raise LayoutError("malformed skeleton description")
        return cls(**data)
