"""The zoo as data: the published skeleton checkpoints of PYSKL and MMAction2 that `skpipe zoo`
lists and `skpipe import NAME` fetches, each with the facts its config holds, so that importing a
listed model needs no `.py` config.

Written from the projects' own published facts (MMAction2's `configs/skeleton/stgcn/metafile.yml`
and `stgcnpp/metafile.yml`, their configs' model and test pipeline; PYSKL's `demo/hagrid.pth`
with `demo/stgcnpp_gesture.py`), never measured here: `top1` is what the project reports on its
own test split. MMAction2 names its weights `..._YYYYMMDD-<first 8 hex of the sha256>.pth`; the
download is checked against that prefix (or against the full digest where one is listed) before
anything reads it. Light (no torch), so that `skpipe zoo` starts fast.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from pipeline import SkpipeError

MMACTION2_BASE = "https://download.openmmlab.com/mmaction/v1.0/skeleton"
PYSKL_BASE = "https://github.com/kennymckormick/pyskl/raw/main"
IMPORTED_FAMILIES = ("ST-GCN", "ST-GCN++")  # what `skpipe import` builds


@dataclass(frozen=True)
class ZooEntry:
    """One published checkpoint: where it is, what it was trained on, and how it is fed."""

    name: str
    project: str  # PYSKL | MMAction2
    family: str  # ST-GCN | ST-GCN++
    dataset: str  # e.g. NTU60
    protocol: str  # e.g. xsub
    keypoints: str  # HRNet 2D | Kinect v2 3D | MediaPipe hands 2D
    stream: str  # j | b | jm | bm
    top1: float  # the project's published top-1 on its test split, in %
    parameters: str  # as published (1.39M)
    url: str
    sha256: str  # a prefix (from the file name) or the whole digest
    classes: str  # a bundled class list (`import --classes`)
    config: dict[str, Any]  # the config's model and test_pipeline, as `read_config` would give them

    @property
    def importable(self) -> bool:
        return self.family in IMPORTED_FAMILIES

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def row(self) -> dict[str, Any]:
        """The listing's fields (no config), for the table and `--json`."""
        out = {k: v for k, v in asdict(self).items() if k != "config"}
        return {**out, "imports": self.importable}


STREAMS = {"joint": "j", "bone": "b", "joint-motion": "jm", "bone-motion": "bm"}


def _mmaction2_config(family: str, dims: int, stream: str, classes: int) -> dict[str, Any]:
    """The model and test pipeline of MMAction2's `{stgcn,stgcnpp}_8xb16-*-u100-80e_ntu*-keypoint-*`
    configs: their backbone arguments, PreNormalize, GenSkeFeat, 100 frames x 10 clips, 2 persons."""
    layout = "nturgb+d" if dims == 3 else "coco"
    if family == "ST-GCN++":
        backbone = {"type": "STGCN", "gcn_adaptive": "init", "gcn_with_res": True, "tcn_type": "mstcn",
                    "graph_cfg": {"layout": layout, "mode": "spatial"}}
    else:
        backbone = {"type": "STGCN", "graph_cfg": {"layout": layout, "mode": "stgcn_spatial"}}
    return {
        "model": {"type": "RecognizerGCN", "backbone": backbone,
                  "cls_head": {"type": "GCNHead", "num_classes": classes, "in_channels": 256}},
        "test_pipeline": [
            {"type": f"PreNormalize{dims}D"},
            {"type": "GenSkeFeat", "dataset": layout, "feats": [stream]},
            {"type": "UniformSampleFrames", "clip_len": 100, "num_clips": 10, "test_mode": True},
            {"type": "PoseDecode"},
            {"type": "FormatGCNInput", "num_person": 2},
            {"type": "PackActionInputs"},
        ],
    }


# (family, dataset, dims, stream, top-1 %, parameters, date-hash) from MMAction2's metafiles
_MMACTION2: tuple[tuple[str, str, int, str, float, str, str], ...] = (
    ("ST-GCN++", "ntu60", 2, "joint", 89.29, "1.39M", "20221228-86e1e77a"),
    ("ST-GCN++", "ntu60", 2, "bone", 92.30, "1.39M", "20221228-cd11a691"),
    ("ST-GCN++", "ntu60", 2, "joint-motion", 87.30, "1.39M", "20221228-19a34aba"),
    ("ST-GCN++", "ntu60", 2, "bone-motion", 88.76, "1.39M", "20221228-c02a0749"),
    ("ST-GCN++", "ntu60", 3, "joint", 89.14, "1.4M", "20221230-4e455ce3"),
    ("ST-GCN++", "ntu60", 3, "bone", 90.21, "1.4M", "20221230-7f356072"),
    ("ST-GCN++", "ntu60", 3, "joint-motion", 86.67, "1.4M", "20221230-650de5cc"),
    ("ST-GCN++", "ntu60", 3, "bone-motion", 87.45, "1.4M", "20221230-b00440d2"),
    ("ST-GCN", "ntu60", 2, "joint", 88.95, "3.1M", "20221129-484a394a"),
    ("ST-GCN", "ntu60", 2, "bone", 91.69, "3.1M", "20221129-c4b44488"),
    ("ST-GCN", "ntu60", 2, "joint-motion", 86.90, "3.1M", "20221129-f18eb408"),
    ("ST-GCN", "ntu60", 2, "bone-motion", 87.86, "3.1M", "20221129-99c60e2d"),
    ("ST-GCN", "ntu60", 3, "joint", 88.11, "3.1M", "20221129-850308e1"),
    ("ST-GCN", "ntu60", 3, "bone", 88.76, "3.1M", "20221129-9c8d2970"),
    ("ST-GCN", "ntu60", 3, "joint-motion", 86.06, "3.1M", "20221129-927648ea"),
    ("ST-GCN", "ntu60", 3, "bone-motion", 85.49, "3.1M", "20221129-593162ca"),
    ("ST-GCN", "ntu120", 2, "joint", 83.19, "3.1M", "20221129-612416c6"),
    ("ST-GCN", "ntu120", 2, "bone", 83.36, "3.1M", "20221129-131e63c3"),
    ("ST-GCN", "ntu120", 2, "joint-motion", 78.87, "3.1M", "20221129-7cb38ec2"),
    ("ST-GCN", "ntu120", 2, "bone-motion", 79.55, "3.1M", "20221129-f5b19892"),
    ("ST-GCN", "ntu120", 3, "joint", 82.15, "3.1M", "20221129-0484f579"),
    ("ST-GCN", "ntu120", 3, "bone", 84.28, "3.1M", "20221129-bc007510"),
    ("ST-GCN", "ntu120", 3, "joint-motion", 78.93, "3.1M", "20221129-5d54f525"),
    ("ST-GCN", "ntu120", 3, "bone-motion", 80.02, "3.1M", "20221129-3cb0e4e1"),
)


def _mmaction2_entries() -> list[ZooEntry]:
    out = []
    for family, dataset, dims, stream, top1, params, stamp in _MMACTION2:
        folder = "stgcnpp" if family == "ST-GCN++" else "stgcn"
        name = f"{folder}_8xb16-{stream}-u100-80e_{dataset}-xsub-keypoint-{dims}d"
        classes = 60 if dataset == "ntu60" else 120
        out.append(ZooEntry(
            name=name, project="MMAction2", family=family, dataset=dataset.upper(), protocol="xsub",
            keypoints="Kinect v2 3D" if dims == 3 else "HRNet 2D", stream=STREAMS[stream], top1=top1,
            parameters=params, url=f"{MMACTION2_BASE}/{folder}/{name}/{name}_{stamp}.pth",
            sha256=stamp.split("-")[1], classes=dataset,
            config=_mmaction2_config(family, dims, STREAMS[stream], classes)))
    return out


# PYSKL's hand-gesture demo model (demo/hagrid.pth, demo/stgcnpp_gesture.py): HaGRID's gestures,
# 40-class head; PYSKL publishes no test accuracy for it (top1 NaN) nor a parameter count (counted
# from its weights here: 197,478)
HAGRID = ZooEntry(
    name="pyskl_stgcnpp_hagrid_gesture", project="PYSKL", family="ST-GCN++", dataset="HaGRID",
    protocol="demo", keypoints="MediaPipe hands 2D", stream="j", top1=float("nan"), parameters="0.20M",
    url=f"{PYSKL_BASE}/demo/hagrid.pth",
    sha256="14d3e55e7c29ee73d22a2306050c7156d516bdeee3ab47547174e38256f807e7", classes="gesture40",
    config={
        "model": {"type": "RecognizerGCN",
                  "backbone": {"type": "STGCN", "in_channels": 2, "gcn_adaptive": "init",
                               "gcn_with_res": True, "tcn_type": "mstcn", "num_stages": 6, "down_stages": [6],
                               "inflate_stages": [6], "graph_cfg": {"layout": "handmp", "mode": "spatial"}},
                  "cls_head": {"type": "GCNHead", "num_classes": 40, "in_channels": 128}},
        "test_pipeline": [
            {"type": "PreNormalize2D", "threshold": 0, "mode": "auto"},
            {"type": "GenSkeFeat", "dataset": "handmp", "feats": ["j"]},
            {"type": "UniformSample", "clip_len": 10, "num_clips": 1},
            {"type": "PoseDecode"},
            {"type": "FormatGCNInput", "num_person": 1},
            {"type": "Collect", "keys": ["keypoint", "label"], "meta_keys": []},
            {"type": "ToTensor", "keys": ["keypoint"]},
        ],
    })

CATALOG: dict[str, ZooEntry] = {e.name: e for e in [HAGRID, *_mmaction2_entries()]}


def listed(dataset: str | None = None) -> list[ZooEntry]:
    """The catalog, or the entries of one dataset (case-insensitive); one line for an unknown one."""
    if dataset is None:
        return list(CATALOG.values())
    found = [e for e in CATALOG.values() if e.dataset.lower() == dataset.lower()]
    if not found:
        known = sorted({e.dataset for e in CATALOG.values()})
        raise SkpipeError(f"--dataset {dataset!r}: no listed model; the zoo lists {', '.join(known)}")
    return found


def entry(name: str) -> ZooEntry | None:
    """The listed model of this name (or of this weights file name), else None."""
    if name in CATALOG:
        return CATALOG[name]
    return next((e for e in CATALOG.values() if e.file_name == name), None)


def to_json(entries: list[ZooEntry]) -> str:
    """The listing as a JSON array (a top-1 that is not published is null)."""
    rows = [{**e.row(), "top1": None if e.top1 != e.top1 else e.top1} for e in entries]
    return json.dumps(rows, indent=2, allow_nan=False)
