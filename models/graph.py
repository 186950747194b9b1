"""The COCO-17 skeleton graph and its normalized adjacency, as plain numpy."""

from __future__ import annotations

import numpy as np

NUM_JOINTS = 17
JOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# DESIGN.md: nose-eyes-ears, shoulders-elbows-wrists, hips-knees-ankles, shoulders-hips,
# shoulder-shoulder, hip-hip, nose-shoulders.
EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4),  # nose - eyes - ears
    (5, 7), (7, 9), (6, 8), (8, 10),  # shoulders - elbows - wrists
    (11, 13), (13, 15), (12, 14), (14, 16),  # hips - knees - ankles
    (5, 11), (6, 12),  # shoulders - hips
    (5, 6), (11, 12),  # shoulder - shoulder, hip - hip
    (0, 5), (0, 6),  # nose - shoulders
)


def adjacency(edges: tuple[tuple[int, int], ...] = EDGES, num_joints: int = NUM_JOINTS) -> np.ndarray:
    """Undirected adjacency with self-loops, (V, V) float32 of 0/1."""
    a = np.eye(num_joints, dtype=np.float32)
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    return a


def normalized_adjacency(edges: tuple[tuple[int, int], ...] = EDGES,
                         num_joints: int = NUM_JOINTS) -> np.ndarray:
    """D^-1/2 (A + I) D^-1/2: symmetric, eigenvalues in (-1, 1]."""
    a = adjacency(edges, num_joints)
    d = 1.0 / np.sqrt(a.sum(axis=1))
    return (a * d[:, None] * d[None, :]).astype(np.float32)
