"""`skpipe import`: a PYSKL or MMAction2 checkpoint (ST-GCN, ST-GCN++) as an ordinary skpipe run.

What the weights show is read from them: the stages and their channels, the joints and graph
partitions (the learned graph A itself), the input channels, the data BN (over V*C or M*V*C),
the TCN (multi-scale or kernel 9), the graph's adaptivity, the residual graph convs, the classes.
What they cannot show comes from the config (read as data: `pipeline.source.mmconfig`) or else
from PYSKL's defaults, and the import names every value it assumed: temporal strides, layout
name, the test pipeline (`pipeline.inputs.pyskl`: normalisation, feats, clip_len, num_clips,
num_person) and how clips are averaged.

The run directory holds config.json (with the pipeline and where the weights came from),
checkpoints/best.pt in skpipe's format, and card.json: `predict`, `evaluate`, `export`,
`live`, `skpipe.load` and `train --init` read it as they read a run skpipe trained (`ensemble`
does not take imported runs yet).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models import build_model
from models.layouts import LAYOUTS, LayoutError, Skeleton, check_layout
from models.stgcnpp import GCNArch
from pipeline import SkpipeError
from pipeline.files.atomic import atomic_dir, atomic_write_text
from pipeline.files.download import BytesFetched, download, hash_prefix, is_url, mirrored
from pipeline.infer.catalog import MMACTION2_BASE, PYSKL_BASE, ZooEntry, entry
from pipeline.infer.formats import CLASS_LISTS
from pipeline.inputs.pyskl import PYSKL_LAYOUTS, PysklPipeline
from pipeline.run.checkpoint import Checkpoint, check_tensors, load_weights_only, save_checkpoint
from pipeline.run.config import MAX_CLASSES, RunConfig, checkpoint_file, write_config
from pipeline.run.options import TrainConfig
from pipeline.source.mmconfig import read_config
from pipeline.source.raw import file_sha256, short_repr

CARD_NAME = "card.json"
MAX_CLASS_FILE = 4 << 20

# (PYSKL / MMAction2 key, skpipe key): the first rule that matches renames a key
KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"backbone\.data_bn\.(.+)", r"data_bn.\1"),
    (r"backbone\.gcn\.(\d+)\.gcn\.A", r"blocks.\1.gcn.a"),
    (r"backbone\.gcn\.(\d+)\.gcn\.PA", r"blocks.\1.gcn.pa"),
    (r"backbone\.gcn\.(\d+)\.gcn\.((?:conv|bn|down)\..+)", r"blocks.\1.gcn.\2"),
    (r"backbone\.gcn\.(\d+)\.tcn\.branches\.(\d+)\.3\.conv\.(.+)", r"blocks.\1.tcn.branches.\2.3.\3"),
    (r"backbone\.gcn\.(\d+)\.tcn\.(.+)", r"blocks.\1.tcn.\2"),
    (r"backbone\.gcn\.(\d+)\.residual\.conv\.(.+)", r"blocks.\1.residual.0.\2"),
    (r"backbone\.gcn\.(\d+)\.residual\.bn\.(.+)", r"blocks.\1.residual.1.\2"),
    (r"cls_head\.fc_cls\.(.+)", r"fc.\1"),  # PYSKL
    (r"cls_head\.fc\.(.+)", r"fc.\1"),  # MMAction2 1.x
)
# backbones of the zoos that skpipe does not implement, by config type or a key they hold
OTHER_MODELS = {"ResNet3dSlowOnly": "PoseC3D", "ResNet3d": "PoseC3D", "C3D": "PoseC3D", "X3D": "PoseC3D",
                "CTRGCN": "CTR-GCN", "AAGCN": "AAGCN", "MSG3D": "MS-G3D", "DGSTGCN": "DG-STGCN",
                "STGCN++": "ST-GCN++"}
OTHER_KEYS = (("backbone.conv1.", "PoseC3D (a 3D CNN)"), ("backbone.layer1.", "PoseC3D (a 3D CNN)"),
              (".gcn.conv_d.", "AAGCN"), (".gcn.convs.", "CTR-GCN"), (".gcn3d.", "MS-G3D"),
              (".sgcn.", "MS-G3D"), (".gcn.alpha", "CTR-GCN or AAGCN"))
NTU_DEFAULT_LAYOUTS = ("coco17", "ntu25")  # the bodies PYSKL's default NTU test pipeline was made for
IGNORED_STEPS = ("PoseDecode", "Collect", "ToTensor", "PackActionInputs", "FormatShape")


@dataclass(frozen=True)
class Imported:
    """What an import found: the network and how to feed it, and what it had to assume."""

    model: str  # stgcnpp or pyskl_stgcn
    arch: GCNArch
    skeleton: Skeleton
    pipeline: PysklPipeline
    num_classes: int
    weights: dict[str, torch.Tensor]  # in skpipe's names
    origin: str  # pyskl or mmaction2
    assumed: tuple[str, ...] = field(default=())


# --- the checkpoint --------------------------------------------------------------------------

def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a PYSKL / MMAction2 checkpoint (bare, or under `state_dict` with mmcv's
    `meta`), loaded with weights_only: tensors, numbers and strings, never code."""
    path = Path(path)
    data = load_weights_only(path)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not data or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()):
        raise SkpipeError(f"{path}: not a checkpoint of weights (expected a dict of tensors, or one "
                          "under 'state_dict')")
    out = {k.removeprefix("module."): v for k, v in data.items()}
    check_tensors(out, path)
    return out


def _refuse_other_models(weights: dict[str, torch.Tensor], cfg: dict[str, Any], path: Path) -> str:
    """'pyskl' or 'mmaction2' for an ST-GCN family checkpoint; one line naming anything else."""
    backbone = _model_cfg(cfg).get("backbone") or {}
    kind = backbone.get("type") if isinstance(backbone, dict) else None
    if isinstance(kind, str) and kind != "STGCN":
        name = OTHER_MODELS.get(kind, kind)
        raise SkpipeError(f"{path}: a {short_repr(name)} model; skpipe imports PYSKL's and MMAction2's "
                          "ST-GCN and ST-GCN++ only")
    for marker, name in OTHER_KEYS:
        if any(marker in k for k in weights):
            raise SkpipeError(f"{path}: a {name} checkpoint; skpipe imports PYSKL's and MMAction2's "
                              "ST-GCN and ST-GCN++ only")
    if "backbone.gcn.0.gcn.A" not in weights:
        first = next(iter(weights))
        raise SkpipeError(f"{path}: not an ST-GCN checkpoint of PYSKL or MMAction2 (no "
                          f"backbone.gcn.0.gcn.A; first key {short_repr(first)})")
    if any(k.startswith("cls_head.fc.") for k in weights):
        return "mmaction2"
    if any(k.startswith("cls_head.fc_cls.") for k in weights):
        return "pyskl"
    raise SkpipeError(f"{path}: no classifier (cls_head.fc_cls.* or cls_head.fc.*)")


def _model_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    model = cfg.get("model")
    return model if isinstance(model, dict) else {}


def _shape(weights: dict[str, torch.Tensor], key: str, path: Path) -> tuple[int, ...]:
    if key not in weights:
        raise SkpipeError(f"{path}: missing key {key}")
    return tuple(weights[key].shape)


def _stage_channels(weights: dict[str, torch.Tensor], path: Path) -> tuple[int, int, int, list[int]]:
    """(K graph partitions, V joints, input channels, each block's output channels)."""
    a = _shape(weights, "backbone.gcn.0.gcn.A", path)
    if len(a) != 3 or a[1] != a[2]:
        raise SkpipeError(f"{path}: backbone.gcn.0.gcn.A has shape {a}; expected (K, V, V)")
    k, v = a[0], a[1]
    blocks = sorted({int(m.group(1)) for key in weights if (m := re.match(r"backbone\.gcn\.(\d+)\.", key))})
    if blocks != list(range(len(blocks))):
        raise SkpipeError(f"{path}: its blocks are not numbered 0..{len(blocks) - 1}")
    conv = _shape(weights, "backbone.gcn.0.gcn.conv.weight", path)
    outs = [_shape(weights, f"backbone.gcn.{i}.gcn.bn.weight", path)[0] for i in blocks]
    if conv[0] != outs[0] * k:
        raise SkpipeError(f"{path}: backbone.gcn.0.gcn.conv.weight has shape {conv}; expected "
                          f"{outs[0] * k} output channels (K x C)")
    return k, v, conv[1], outs


def _arch(weights: dict[str, torch.Tensor], backbone: dict[str, Any], in_channels: int, outs: list[int],
          path: Path, assumed: list[str]) -> GCNArch:
    """The architecture the weights show, with the strides (and adaptivity) they cannot show from
    the config's backbone, or else PYSKL's defaults."""
    stages = len(outs)
    inflate = [i + 1 for i in range(1, stages) if outs[i] != outs[i - 1]]
    ratio = outs[inflate[0] - 1] / outs[inflate[0] - 2] if inflate else 2.0
    # a residual conv where the channels stay the same can only be a stride
    visible = [i + 1 for i in range(1, stages) if outs[i] == outs[i - 1]
               and f"backbone.gcn.{i}.residual.conv.weight" in weights]
    if "down_stages" in backbone:
        down = backbone["down_stages"]
        if not isinstance(down, list | tuple) or len(down) > stages or not all(
                isinstance(s, int) and not isinstance(s, bool) for s in down):
            raise SkpipeError(f"{path}: the config's down_stages is not a list of at most {stages} "
                              "stage numbers")
    else:
        down = sorted({*inflate, *visible})
        if inflate:
            assumed.append(f"temporal strides at the inflate stages {inflate} (PYSKL's default)")
    tcn = "mstcn" if any(re.match(r"backbone\.gcn\.\d+\.tcn\.branches\.", k) for k in weights) else "unit_tcn"
    if tcn == "unit_tcn" and "backbone.gcn.0.tcn.conv.weight" not in weights:
        raise SkpipeError(f"{path}: a temporal conv skpipe does not know (neither mstcn nor unit_tcn)")
    has_pa = "backbone.gcn.0.gcn.PA" in weights
    adaptive = backbone.get("gcn_adaptive", "importance" if has_pa else "init")
    if has_pa and adaptive not in ("importance", "offset"):
        adaptive = "importance"
    if not has_pa:
        adaptive = "init"  # A as stored: learned or fixed, the forward pass is the same
    if has_pa and "gcn_adaptive" not in backbone:
        assumed.append("gcn_adaptive='importance' (PYSKL's default)")
    with_res = any(".gcn.down." in k for k in weights)
    data_bn = "none"
    if "backbone.data_bn.weight" in weights:
        n = _shape(weights, "backbone.data_bn.weight", path)[0]
        v = _shape(weights, "backbone.gcn.0.gcn.A", path)[1]
        data_bn = "VC" if n == v * in_channels else "MVC"
    mode = _dig(backbone, "graph_cfg", "mode") or ("stgcn_spatial" if adaptive == "importance" else "spatial")
    try:
        arch = GCNArch(base_channels=outs[0], ch_ratio=float(ratio), num_stages=stages,
                       inflate_stages=tuple(inflate), down_stages=tuple(down), data_bn=data_bn, tcn=tcn,
                       gcn_adaptive=adaptive, gcn_with_res=with_res,
                       graph=mode if mode in ("spatial", "stgcn_spatial") else "spatial")
    except LayoutError as e:
        raise SkpipeError(f"{path}: {e}") from None
    if [c for _, c, _ in arch.blocks(in_channels)] != outs:
        raise SkpipeError(f"{path}: block channels {outs} are not what PYSKL's STGCN builds")
    for key, value in (("num_stages", stages), ("base_channels", outs[0]), ("in_channels", in_channels)):
        if key in backbone and backbone[key] != value:
            raise SkpipeError(f"{path}: the config says {key}={backbone[key]!r}, its weights {value}")
    return arch


# --- the config's test pipeline ------------------------------------------------------------

def _test_pipeline(cfg: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The config's test pipeline: `test_pipeline`, PYSKL's data.test, or MMAction2's dataloader."""
    for steps in (cfg.get("test_pipeline"), _dig(cfg, "data", "test", "pipeline"),
                  _dig(cfg, "test_dataloader", "dataset", "pipeline"),
                  _dig(cfg, "test_dataloader", "dataset", "dataset", "pipeline")):
        if isinstance(steps, list) and all(isinstance(s, dict) for s in steps):
            return steps
    return None


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _pipeline(cfg: dict[str, Any], layout: str, dims: int, persons_seen: int | None, assumed: list[str],
              path: Path, origin: str) -> PysklPipeline:
    """The test pipeline from the config, PYSKL's defaults where it says nothing; its transforms
    as the checkpoint's own project (`origin`) computes them."""
    dataset = next((k for k, v in PYSKL_LAYOUTS.items() if v == layout), "coco")
    kw: dict[str, Any] = {"normalize": "3d" if dims == 3 else "2d", "dataset": dataset, "origin": origin}
    steps = _test_pipeline(cfg)
    if steps is None:
        if layout not in NTU_DEFAULT_LAYOUTS:  # NTU's body pipeline would feed a hand wrongly
            raise SkpipeError(f"{path}: a {layout} model without its config: PYSKL's default test pipeline "
                              "(100 frames x 10 clips, 2 persons, PreNormalize) is NTU's body pipeline, "
                              "not this one's; give --config (the .py it was trained with) or import it by "
                              "name (skpipe zoo)")
        assumed.append(f"the test pipeline: PreNormalize{dims}D, joints, 100 frames x 10 clips, "
                       "2 persons (PYSKL's NTU tests)")
        kw.update(clip_len=100, num_clips=10, num_person=persons_seen or 2)
        return PysklPipeline(**kw)
    names = [s.get("type") for s in steps]
    kw["normalize"] = "none"
    for step in steps:
        _step(step, kw, path)
    if not any(n in ("UniformSample", "UniformSampleFrames") for n in names):
        raise SkpipeError(f"{path}: its test pipeline samples no frames (UniformSample); "
                          "skpipe needs clip_len")
    if "FormatGCNInput" not in names:
        kw["num_person"] = persons_seen or 2
        assumed.append(f"num_person={kw['num_person']} (FormatGCNInput's default)")
    if kw.get("mode") == "auto":
        kw["units"] = "frame"
        assumed.append("2D coordinates as fractions of the frame (x / width, y / height), as PYSKL's "
                       "demo feeds MediaPipe's: auto mode leaves them unchanged")
    avg = _dig(cfg, "model", "test_cfg", "average_clips") or _dig(cfg, "model", "cls_head", "average_clips")
    if avg is not None:
        kw["average"] = avg
    try:
        return PysklPipeline(**kw)
    except (SkpipeError, TypeError) as e:
        raise SkpipeError(f"{path}: its test pipeline: {e}") from None


def _step(step: dict[str, Any], kw: dict[str, Any], path: Path) -> None:
    kind, args = step.get("type"), {k: v for k, v in step.items() if k != "type"}

    def take(*names: str) -> dict[str, Any]:
        extra = set(args) - set(names)
        if extra:
            raise SkpipeError(f"{path}: {kind}({sorted(extra)[0]}=...) is not implemented by skpipe")
        return args

    if kind == "PreNormalize2D":
        kw.update(normalize="2d", **take("img_shape", "threshold", "mode"))
    elif kind == "PreNormalize3D":
        kw.update(normalize="3d", **take("zaxis", "xaxis", "align_spine", "align_center", "align_shoulder"))
    elif kind == "GenSkeFeat":
        a = take("dataset", "feats", "axis")
        feats = a.get("feats", ["j"])
        if not isinstance(feats, list | tuple) or len(feats) != 1:
            raise SkpipeError(f"{path}: GenSkeFeat(feats={feats!r}): skpipe feeds one stream per model")
        kw.update(feats=feats[0], **({"dataset": a["dataset"]} if "dataset" in a else {}))
    elif kind in ("UniformSample", "UniformSampleFrames"):
        a = take("clip_len", "num_clips", "p_interval", "seed", "test_mode")
        p = a.get("p_interval", 1)
        kw.update(clip_len=a.get("clip_len"), num_clips=a.get("num_clips", 1), seed=a.get("seed", 255),
                  p_interval=tuple(p) if isinstance(p, list | tuple) else (p, p))
    elif kind == "FormatGCNInput":
        a = take("num_person", "mode")
        kw.update(num_person=a.get("num_person", 2), person_mode=a.get("mode", "zero"))
    elif kind not in IGNORED_STEPS:
        raise SkpipeError(f"{path}: test pipeline step {short_repr(str(kind))} is not implemented by skpipe")


# --- the whole import ----------------------------------------------------------------------

def inspect_checkpoint(path: Path, config: Path | None = None, known: dict[str, Any] | None = None
                       ) -> Imported:
    """Read a checkpoint (and its config, or the `known` config facts of a listed model) into
    what an import writes, or one line naming why not."""
    path = Path(path)
    cfg = read_config(config) if config is not None else dict(known or {})
    weights = read_weights(path)
    origin = _refuse_other_models(weights, cfg, path)
    assumed: list[str] = []
    model_cfg = _model_cfg(cfg)
    if model_cfg.get("type") not in (None, "RecognizerGCN"):
        raise SkpipeError(f"{path}: a {short_repr(str(model_cfg['type']))} recognizer; skpipe imports "
                          "RecognizerGCN models")
    backbone: dict[str, Any] = model_cfg.get("backbone") or {}
    if not isinstance(backbone, dict):
        raise SkpipeError(f"{config}: model.backbone is not a dict")
    k, v, in_channels, outs = _stage_channels(weights, path)
    layout = _layout(backbone, v, path, assumed)
    pipeline = _pipeline(cfg, layout["name"], 3 if layout["name"] == "ntu25" and in_channels == 3 else 2,
                         None, assumed, path, origin)
    dims = 3 if pipeline.normalize == "3d" else 2
    if in_channels not in (dims, dims + 1):
        raise SkpipeError(f"{path}: {in_channels} input channels; a {dims}D skeleton gives {dims} or "
                          f"{dims + 1} (skpipe feeds one stream per model)")
    arch = _arch(weights, backbone, in_channels, outs, path, assumed)
    persons = pipeline.num_person
    if arch.data_bn == "MVC":
        m = _shape(weights, "backbone.data_bn.weight", path)[0] // (v * in_channels)
        if m != persons:
            raise SkpipeError(f"{path}: its data BN is over {m} persons, its pipeline feeds {persons}")
    skeleton = Skeleton(layout=layout, dims=dims, score=in_channels == dims + 1, persons=persons)
    fc = _shape(weights, "cls_head.fc.weight" if origin == "mmaction2" else "cls_head.fc_cls.weight", path)
    if not 1 <= fc[0] <= MAX_CLASSES:
        raise SkpipeError(f"{path}: a head of {fc[0]} classes")
    head = _dig(model_cfg, "cls_head", "num_classes")
    if head is not None and head != fc[0]:
        raise SkpipeError(f"{path}: the config says {head} classes, the head has {fc[0]}")
    model = "stgcnpp" if arch.tcn == "mstcn" else "pyskl_stgcn"
    if k != 3:
        raise SkpipeError(f"{path}: a graph of {k} partitions; skpipe's builds 3")
    renamed = _renamed(weights, path)
    return Imported(model, arch, skeleton, pipeline, fc[0], renamed, origin, tuple(assumed))


def _layout(backbone: dict[str, Any], v: int, path: Path, assumed: list[str]) -> dict[str, Any]:
    name = _dig(backbone, "graph_cfg", "layout")
    if name is None:
        by_size = {len(LAYOUTS[n]["joints"]): n for n in PYSKL_LAYOUTS.values()}
        if v not in by_size:
            raise SkpipeError(f"{path}: {v} joints match none of PYSKL's layouts "
                              f"({', '.join(PYSKL_LAYOUTS)})")
        assumed.append(f"layout {by_size[v]} (from its {v} joints)")
        return check_layout(LAYOUTS[by_size[v]])
    if name not in PYSKL_LAYOUTS:
        raise SkpipeError(f"{path}: graph layout {short_repr(str(name))} is none of PYSKL's "
                          f"({', '.join(PYSKL_LAYOUTS)})")
    layout = check_layout(LAYOUTS[PYSKL_LAYOUTS[name]])
    if len(layout["joints"]) != v:
        raise SkpipeError(f"{path}: layout {name} has {len(layout['joints'])} joints, its graph {v}")
    return layout


def _renamed(weights: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, t in weights.items():
        for pattern, target in KEY_RULES:
            if re.fullmatch(pattern, key):
                out[re.sub(f"^{pattern}$", target, key)] = t
                break
        else:
            raise SkpipeError(f"{path}: unexpected key {short_repr(key)} (not a part of ST-GCN or ST-GCN++)")
    return out


def network(imp: Imported, path: Path) -> torch.nn.Module:
    """The imported weights in skpipe's network, every key and shape checked (one line naming the
    first missing, extra or misshapen key)."""
    net = build_model(imp.model, imp.num_classes, 0.0, imp.skeleton, imp.arch.to_dict())
    ours = net.state_dict()
    for key, t in ours.items():
        if key not in imp.weights:
            raise SkpipeError(f"{path}: missing key for {key} (its architecture is not what the rest shows)")
        if tuple(imp.weights[key].shape) != tuple(t.shape):
            raise SkpipeError(f"{path}: {key} has shape {tuple(imp.weights[key].shape)}; "
                              f"expected {tuple(t.shape)}")
    extra = sorted(set(imp.weights) - set(ours))
    if extra:
        raise SkpipeError(f"{path}: unexpected key for {extra[0]}")
    net.load_state_dict({k: t.to(ours[k].dtype) for k, t in imp.weights.items()})
    return net.eval()


def class_names(spec: str | None, n: int) -> tuple[tuple[str, ...], str]:
    """The names of the head's `n` classes: a bundled list by name, a file of one name per line,
    or class_NNN; and where they came from."""
    if spec is None:
        return tuple(f"class_{i:03d}" for i in range(n)), "none given (class_NNN)"
    if spec in CLASS_LISTS:
        text = (Path(__file__).resolve().parents[1] / "source" / "classes" / f"{spec}.txt").read_text("utf-8")
        where = f"bundled {spec}"
    else:
        p = Path(spec)
        if not p.is_file():
            raise SkpipeError(f"--classes {spec}: neither a file nor one of {', '.join(CLASS_LISTS)}")
        if p.stat().st_size > MAX_CLASS_FILE:
            raise SkpipeError(f"--classes {spec}: larger than any class list")
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise SkpipeError(f"--classes {spec}: not UTF-8 text") from None
        where = str(p)
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != n:
        raise SkpipeError(f"--classes {spec}: {len(names)} names for a head of {n} classes")
    if any(len(c) > 200 or not c.isprintable() for c in names):
        raise SkpipeError(f"--classes {spec}: a name that is not one printable line of at most 200 "
                          "characters")
    return names, where


def fetch_checkpoint(source: str, mirror: str | None = None, progress: BytesFetched | None = None
                     ) -> tuple[Path, ZooEntry | None]:
    """A checkpoint on disk for `source`: a listed model's name (downloaded from where its
    project publishes it, or `mirror`), an http(s) URL, or a local file; checked against the
    sha256 its listing or its file name carries before anything reads it."""
    listed = entry(source)
    if listed is not None:
        base = PYSKL_BASE if listed.project == "PYSKL" else MMACTION2_BASE
        url = mirrored(listed.url, mirror, base)
        return download(url, listed.file_name, listed.sha256, progress=progress), listed
    if is_url(source):
        name = source.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return download(source, name, hash_prefix(name), progress=progress), entry(name)
    path = Path(source)
    if not path.is_file():
        raise SkpipeError(f"{source}: neither a file, an http(s) URL nor a model `skpipe zoo` lists")
    return path, None


def import_checkpoint(path: Path, out: Path, config: Path | None = None, classes: str | None = None,
                      force: bool = False, listed: ZooEntry | None = None
                      ) -> tuple[Path, Imported, RunConfig]:
    """Write `out`: an ordinary run directory holding the imported model (a `listed` model's
    config facts and classes stand in for a config and --classes not given)."""
    from pipeline.infer.card import card_of

    path = Path(path)
    if classes is None and listed is not None:
        classes = listed.classes
    imp = inspect_checkpoint(path, config, listed.config if listed is not None and config is None else None)
    names, names_from = class_names(classes, imp.num_classes)
    net = network(imp, path)
    p = imp.pipeline
    train = TrainConfig(model=imp.model, cache="", split="zoo", epochs=1, frames=p.clip_len, feats=p.feats,
                        normalize="pyskl", dropout=0.0, num_clips=p.num_clips, recipe="imported")
    source = {"kind": "import", "origin": imp.origin, "checkpoint": str(path.resolve()),
              "sha256": file_sha256(path), "classes": names_from, "assumed": list(imp.assumed)}
    if config is not None:
        source.update(config=str(Path(config).resolve()), config_sha256=file_sha256(Path(config)))
    elif listed is not None:
        source.update(config=f"listed: {listed.name}", url=listed.url)
    run = RunConfig(train=train, cache="", manifest_hash="", num_classes=imp.num_classes, class_names=names,
                    cache_dtype="float32", parameters=sum(t.numel() for t in net.parameters()),
                    skeleton=imp.skeleton.to_dict(), arch=imp.arch.to_dict(),
                    pyskl=p.to_dict(), source=source)
    run.check()
    with atomic_dir(Path(out), force, "run directory") as tmp:
        (tmp / "checkpoints").mkdir()
        write_config(tmp, run)
        save_checkpoint(Checkpoint.of(net, run.model_args, config={"source": source}),
                        checkpoint_file(tmp, "best"))
        atomic_write_text(tmp / CARD_NAME, card_of(run, "run", ("x", "lengths")).to_json() + "\n")
    return Path(out), imp, run


__all__ = ["CLASS_LISTS", "Imported", "class_names", "import_checkpoint", "inspect_checkpoint", "network",
           "read_weights"]
