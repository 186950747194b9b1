"""skpipe's import against MMAction2's own code: networks and test pipelines, outside CI.

Two steps, two environments (MMAction2 is never a dependency of skpipe):

    # 1. in a venv with torch==2.13.0, mmaction2==1.2.0, mmengine, mmcv-lite<2.2 and importlib_metadata
    python -m benchmarks.zoo_reference make REF_DIR
    # 2. in skpipe's environment
    python -m benchmarks.zoo_reference check REF_DIR

`make` builds MMAction2's STGCN + GCNHead for several configurations (ST-GCN++ and vanilla
ST-GCN; COCO-17 2D with one and two persons; VC and MVC data BN; NTU 3D; a two-stage net; PYSKL's
real hand-gesture checkpoint), gives every BatchNorm random running statistics so eval mode is
not the identity, and writes each as an MMAction2 1.x checkpoint with an MMAction2-style config,
an input tensor (N, M, T, V, C) and MMAction2's logits. It also runs MMAction2's test pipeline
(PreNormalize2D / 3D, GenSkeFeat, UniformSampleFrames in test mode, PoseDecode, FormatGCNInput)
on real and synthetic annotations. `check` imports each checkpoint with skpipe, feeds the same
tensor to the imported run and to its ONNX export, runs skpipe's PYSKL pipeline on the same
annotations, and prints the largest relative differences.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HANDMP_INWARD = [(1, 0), (2, 1), (3, 2), (4, 3), (5, 0), (6, 5), (7, 6), (8, 7), (9, 0), (10, 9), (11, 10),
                 (12, 11), (13, 0), (14, 13), (15, 14), (16, 15), (17, 0), (18, 17), (19, 18), (20, 19)]
# name: (backbone kwargs, classes, persons, frames, test pipeline)
CASES = {
    "stgcnpp_coco_1p_vc": (dict(in_channels=3, graph_cfg=dict(layout="coco", mode="spatial"),
                                gcn_adaptive="init", gcn_with_res=True, tcn_type="mstcn"), 60, 1, 48,
                           "2d"),
    "stgcnpp_coco_2p_mvc": (dict(in_channels=3, graph_cfg=dict(layout="coco", mode="spatial"),
                                 gcn_adaptive="init", gcn_with_res=True, tcn_type="mstcn", data_bn_type="MVC",
                                 num_person=2), 60, 2, 40, "2d"),
    "stgcnpp_ntu3d_2p_b": (dict(in_channels=3, graph_cfg=dict(layout="nturgb+d", mode="spatial"),
                                gcn_adaptive="init", gcn_with_res=True, tcn_type="mstcn"), 120, 2, 32, "3d"),
    "stgcn_coco_2p_vc": (dict(in_channels=3, graph_cfg=dict(layout="coco", mode="stgcn_spatial")), 60, 2, 40,
                         "2d"),
    "stgcn_ntu3d_1p_mvc": (dict(in_channels=3, graph_cfg=dict(layout="nturgb+d", mode="stgcn_spatial"),
                                data_bn_type="MVC", num_person=1), 60, 1, 24, "3d"),
    "tiny_two_stage_2p": (dict(in_channels=3, base_channels=16, num_stages=2, inflate_stages=[2],
                               down_stages=[2], graph_cfg=dict(layout="coco", mode="spatial"),
                               gcn_adaptive="init", gcn_with_res=True, tcn_type="mstcn"), 5, 2, 16, "2d"),
}


def _config_text(name: str, backbone: dict, classes: int, persons: int, frames: int, kind: str) -> str:
    norm = "dict(type='PreNormalize3D')" if kind == "3d" else "dict(type='PreNormalize2D')"
    dataset = backbone["graph_cfg"]["layout"]
    feats = "b" if name.endswith("_b") else "j"
    args = ", ".join(f"{k}={v!r}" for k, v in backbone.items())
    return (f"model = dict(type='RecognizerGCN', backbone=dict(type='STGCN', {args}), "
            f"cls_head=dict(type='GCNHead', num_classes={classes}, in_channels=256))\n"
            f"test_pipeline = [{norm}, dict(type='GenSkeFeat', dataset='{dataset}', feats=['{feats}']), "
            f"dict(type='UniformSampleFrames', clip_len={frames}, num_clips=2, test_mode=True), "
            f"dict(type='PoseDecode'), dict(type='FormatGCNInput', num_person={persons}), "
            "dict(type='PackActionInputs')]\n"
            "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n")


def _randomise_bn(model) -> None:  # noqa: ANN001 - MMAction2's module
    import torch

    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def make(out: Path) -> None:
    import torch
    from mmaction.models.backbones import STGCN
    from mmaction.models.heads import GCNHead

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cases = dict(CASES)
    for name, (backbone, classes, persons, frames, kind) in cases.items():
        net = STGCN(**backbone)
        last = int(64 * 2 ** len(backbone.get("inflate_stages", [5, 8]))) if "base_channels" not in backbone \
            else backbone["base_channels"] * 2
        head = GCNHead(num_classes=classes, in_channels=last)
        _randomise_bn(net)
        for p in net.parameters():  # A, PA and weights away from their initial values
            p.data.add_(torch.randn_like(p) * 0.05)
        _save(out, name, net, head, backbone, classes, persons, frames, kind)
    _hagrid(out)
    _pipelines(out)


def _save(out: Path, name: str, net, head, backbone: dict, classes: int, persons: int, frames: int,  # noqa: ANN001
          kind: str) -> None:
    import torch

    net.eval()
    head.eval()
    v = {"coco": 17, "nturgb+d": 25}.get(backbone["graph_cfg"]["layout"], 21)
    x = torch.randn(3, persons, frames, v, backbone["in_channels"])
    with torch.no_grad():
        feat = net(x)  # (N, M, C, T, V)
        logits = head(feat)
    sd = {f"backbone.{k}": t for k, t in net.state_dict().items()}
    sd.update({f"cls_head.{k}": t for k, t in head.state_dict().items()})
    torch.save({"state_dict": sd, "meta": {"mmaction_version": "1.2.0"}}, out / f"{name}.pth")
    (out / f"{name}.py").write_text(_config_text(name, backbone, classes, persons, frames, kind))
    np.save(out / f"{name}_x.npy", x.numpy())
    np.save(out / f"{name}_logits.npy", logits.numpy())
    print(f"made {name}: {sum(t.numel() for t in net.parameters()):,} backbone parameters")


def _hagrid(out: Path) -> None:
    """PYSKL's real hand-gesture checkpoint in MMAction2's network (graph A from the checkpoint)."""
    import torch
    from mmaction.models.backbones import STGCN
    from mmaction.models.heads import GCNHead

    sd = torch.load(SHARED / "pyskl" / "hagrid.pth", weights_only=True)
    backbone = dict(in_channels=2, gcn_adaptive="init", gcn_with_res=True, tcn_type="mstcn", num_stages=6,
                    down_stages=[6], inflate_stages=[6],
                    graph_cfg=dict(layout=dict(num_node=21, inward=HANDMP_INWARD, center=0), mode="spatial"))
    net, head = STGCN(**backbone), GCNHead(num_classes=40, in_channels=128)
    net.load_state_dict({k[len("backbone."):]: t for k, t in sd.items() if k.startswith("backbone.")})
    head.load_state_dict({"fc.weight": sd["cls_head.fc_cls.weight"], "fc.bias": sd["cls_head.fc_cls.bias"]})
    net.eval()
    head.eval()
    x = torch.rand(4, 1, 10, 21, 2)
    with torch.no_grad():
        np.save(out / "hagrid_logits.npy", head(net(x)).numpy())
    np.save(out / "hagrid_x.npy", x.numpy())
    print("made hagrid (the real checkpoint)")


def _pipelines(out: Path) -> None:
    """MMAction2's test pipeline on annotations: 2D JHMDB clips (fix mode), 3D NW-UCLA-sized
    synthetic NTU clips with two persons and empty frames, short and long clips."""
    from mmaction.datasets.transforms import (
        FormatGCNInput,
        GenSkeFeat,
        PoseDecode,
        PreNormalize2D,
        PreNormalize3D,
        UniformSampleFrames,
    )

    with open(SHARED / "jhmdb14_gt_coco17.pkl", "rb") as f:
        anns = pickle.load(f)["annotations"][:6]
    rng = np.random.default_rng(0)
    cases = []
    for i, a in enumerate(anns):
        for feats in ("j", "b", "jm", "bm"):
            for clip_len, clips in ((10, 1), (32, 3), (64, 2)):
                cases.append((f"2d_{i}_{feats}_{clip_len}x{clips}", dict(a), "2d", feats, clip_len, clips, 1))
    for i, t in enumerate((7, 40, 150)):
        kp = rng.normal(size=(2, t, 25, 3)).astype(np.float32)
        kp[1, : t // 3] = 0  # the second body appears later
        kp[:, -2:] = 0  # empty frames at the end are dropped by PreNormalize3D
        a = {"keypoint": kp, "total_frames": t, "frame_dir": f"s{i}", "label": 0}
        for feats in ("j", "b", "jm"):
            cases.append((f"3d_{i}_{feats}", a, "3d", feats, 20, 2, 2))
    results = {}
    for name, ann, kind, feats, clip_len, clips, persons in cases:
        r = dict(ann, start_index=0, test_mode=True)
        r["keypoint"] = np.asarray(r["keypoint"]).copy()
        steps = [PreNormalize3D() if kind == "3d" else PreNormalize2D(),
                 GenSkeFeat(dataset="nturgb+d" if kind == "3d" else "coco", feats=[feats]),
                 UniformSampleFrames(clip_len=clip_len, num_clips=clips, test_mode=True), PoseDecode(),
                 FormatGCNInput(num_person=persons)]
        for s in steps:
            r = s.transform(r)
        results[name] = (np.asarray(r["keypoint"], np.float32), kind, feats, clip_len, clips, persons)
    with open(out / "pipelines.pkl", "wb") as f:
        pickle.dump({"cases": {k: v[1:] for k, v in results.items()},
                     "inputs": {c[0]: {k: v for k, v in c[1].items() if k in ("keypoint", "keypoint_score",
                                                                             "img_shape", "total_frames")}
                                for c in cases},
                     "outputs": {k: v[0] for k, v in results.items()}}, f)
    print(f"made {len(results)} pipeline cases")


def check(ref: Path) -> None:
    import tempfile

    import skpipe
    from pipeline.infer.export import export_run
    from pipeline.infer.zoo import import_checkpoint
    from pipeline.inputs.pyskl import PysklPipeline, pyskl_input

    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in [*CASES, "hagrid"]:
            cfg = ref / f"{name}.py"
            config = cfg if cfg.exists() and cfg.read_text() else None
            if name == "hagrid":
                ckpt, config = SHARED / "pyskl" / "hagrid.pth", SHARED / "pyskl" / "stgcnpp_gesture.py"
            else:
                ckpt = ref / f"{name}.pth"
            run, imp, _ = import_checkpoint(ckpt, Path(tmp) / name, config)
            x = np.load(ref / f"{name}_x.npy")
            want = np.load(ref / f"{name}_logits.npy")
            if imp.skeleton.persons == 1:
                x = x[:, 0]  # the run squeezes M
            lengths = np.full(len(x), x.shape[-3], np.int64)
            got = skpipe.load(run).logits(x, lengths)
            export_run(run, "onnx", cache_dir=None)
            onnx = skpipe.load(run / "export" / "model.onnx").logits(x, lengths)
            rel = max(float(np.abs(g - want).max() / np.abs(want).max()) for g in (got, onnx))
            worst = max(worst, rel)
            print(f"{name:24s} {imp.model:12s} {imp.arch.data_bn:4s} M={imp.skeleton.persons}  "
                  f"max |diff| / max |logit| = {rel:.1e} (torch and ONNX)")
    with open(ref / "pipelines.pkl", "rb") as f:
        pipes = pickle.load(f)
    pworst = 0.0
    for name, (kind, feats, clip_len, clips, persons) in pipes["cases"].items():
        ann = pipes["inputs"][name]
        p = PysklPipeline(normalize=kind, dataset="nturgb+d" if kind == "3d" else "coco", feats=feats,
                          clip_len=clip_len, num_clips=clips, num_person=persons, origin="mmaction2")
        got = pyskl_input(ann["keypoint"], ann.get("keypoint_score"), ann.get("img_shape"), p)
        want = pipes["outputs"][name]
        if got.shape != want.shape:
            raise SystemExit(f"{name}: shape {got.shape} against MMAction2's {want.shape}")
        pworst = max(pworst, float(np.abs(got - want).max()))
    print(f"networks: worst relative logit difference {worst:.1e} over {len(CASES) + 1} checkpoints")
    print(f"pipelines: worst absolute input difference {pworst:.1e} over {len(pipes['cases'])} cases")
    print(json.dumps({"networks_worst_rel": worst, "pipelines_worst_abs": pworst}))


if __name__ == "__main__":
    step, where = sys.argv[1], Path(sys.argv[2])
    make(where) if step == "make" else check(where)
