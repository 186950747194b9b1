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


# PYSKL's COCO layout: edges pointing inward, toward the centre joint (the nose).
INWARD: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8), (8, 6),
    (5, 0), (6, 0), (1, 0), (3, 1), (2, 0), (4, 2),
)
# Each joint's parent on that tree, as PYSKL's JointToBone pairs it (the nose is its own parent).
PARENTS: tuple[int, ...] = (0, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 0, 0, 11, 12, 13, 14)
# Left / right joint pairs, swapped by a horizontal flip.
LEFT_RIGHT: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12),
                                           (13, 14), (15, 16))


def _edge_matrix(edges: tuple[tuple[int, int], ...], num_joints: int) -> np.ndarray:
    """A[j, i] = 1 for every edge (i, j), as PYSKL's edge2mat."""
    a = np.zeros((num_joints, num_joints), dtype=np.float32)
    for i, j in edges:
        a[j, i] = 1.0
    return a


def _normalize_columns(a: np.ndarray) -> np.ndarray:
    """A D^-1 with D the column sums (columns summing to 0 stay 0), as PYSKL's normalize_digraph."""
    d = a.sum(axis=0)
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    return (a * inv[None, :]).astype(np.float32)


def spatial_partitions(inward: tuple[tuple[int, int], ...] = INWARD,
                       num_joints: int = NUM_JOINTS) -> np.ndarray:
    """(3, V, V): identity, inward and outward edges, each normalized (PYSKL's `spatial` mode)."""
    outward = tuple((j, i) for i, j in inward)
    return np.stack([
        np.eye(num_joints, dtype=np.float32),
        _normalize_columns(_edge_matrix(inward, num_joints)),
        _normalize_columns(_edge_matrix(outward, num_joints)),
    ])
