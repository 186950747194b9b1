"""Skeleton graphs from a layout (`models.layouts`), as plain numpy: ST-GCN's normalized
adjacency and ST-GCN++'s three spatial partitions. The COCO-17 constants below are the default
layout's, kept under their names."""

from __future__ import annotations

import numpy as np

from models.layouts import COCO17, Layout

Pairs = tuple[tuple[int, int], ...]


def _pairs(key: str, layout: Layout = COCO17) -> Pairs:
    return tuple((int(a), int(b)) for a, b in layout[key])


NUM_JOINTS = len(COCO17["joints"])
JOINT_NAMES = tuple(COCO17["joints"])
EDGES: Pairs = _pairs("edges")  # the seed's ST-GCN graph (shared/DESIGN.md)


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


INWARD: Pairs = _pairs("inward")  # PYSKL's COCO graph: edges toward the centre joint (the nose)
PARENTS: tuple[int, ...] = tuple(COCO17["parents"])  # as PYSKL's JointToBone pairs them
LEFT_RIGHT: Pairs = _pairs("pairs")  # swapped by a horizontal flip


def layout_adjacency(layout: Layout) -> np.ndarray:
    """ST-GCN's D^-1/2 (A + I) D^-1/2 over the layout's undirected `edges`: (V, V) float32."""
    return normalized_adjacency(_pairs("edges", layout), len(layout["joints"]))


def layout_partitions(layout: Layout) -> np.ndarray:
    """ST-GCN++'s (3, V, V) identity / inward / outward partitions over the layout's tree."""
    return spatial_partitions(_pairs("inward", layout), len(layout["joints"]))


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


def stgcn_spatial(layout: Layout) -> np.ndarray:
    """Vanilla ST-GCN's (3, V, V) graph (PYSKL's `stgcn_spatial` mode, max_hop 1): self-links,
    then the one-hop neighbours at least as far from the centre, then those nearer, each weighted
    by the column-normalized adjacency. Hop distances beyond one are infinite, as PYSKL's are."""
    v, center = len(layout["joints"]), int(layout["center"])
    adj = np.eye(v)
    for i, j in _pairs("inward", layout):
        adj[i, j] = adj[j, i] = 1.0
    hop = np.where(np.eye(v) > 0, 0.0, np.where(adj > 0, 1.0, np.inf))  # (V, V)
    norm = _normalize_columns(adj.astype(np.float32))
    # entry [j, i]: joint j's distance to the centre against joint i's
    close = hop[:, [center]] >= hop[center][None, :]  # (V, V)
    one = hop == 1
    return np.stack([np.where(hop == 0, norm, 0.0), np.where(one & close, norm, 0.0),
                     np.where(one & ~close, norm, 0.0)]).astype(np.float32)
