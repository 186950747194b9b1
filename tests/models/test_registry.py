"""Adding a model is its module plus one registry entry: a toy model trains, evaluates and
exports through the whole pipeline without touching anything else."""

from __future__ import annotations

import torch
from torch import nn

import skpipe
from models import MODELS, ModelEntry
from pipeline.infer.evaluate import evaluate_run
from pipeline.infer.export import export_run
from pipeline.run.options import TrainConfig
from pipeline.train.fit import fit


class MeanPool(nn.Module):
    """(B, [M,] T, V, C) -> logits from the mean joint over time: the smallest model there is."""

    def __init__(self, num_classes: int, dropout: float = 0.0, skeleton=None) -> None:  # noqa: ANN001
        super().__init__()
        c = skeleton.channels if skeleton is not None else 3
        v = skeleton.num_joints if skeleton is not None else 17
        self.fc = nn.Linear(v * c, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = x.mean(dim=-3)  # (B, [M,] V, C)
        if x.dim() == 4:
            x = x.mean(dim=1)  # persons
        return self.fc(x.flatten(1))


def test_a_model_added_by_one_entry_trains_evaluates_and_exports(synth_cache, tmp_path, monkeypatch):
    entry = ModelEntry(lambda arch, **kw: MeanPool(**kw), 3, "mean joint + linear")
    monkeypatch.setitem(MODELS, "toy", entry)
    s = fit(TrainConfig(model="toy", cache=str(synth_cache), out=str(tmp_path), frames=16, threads=1,
                        precision="fp32"))
    assert s.epochs == 3  # the entry's default epochs
    ev = evaluate_run(s.run_dir, "test")
    assert 0.0 <= ev.report.scores.accuracy <= 1.0 and ev.report.model == "toy"
    r = export_run(s.run_dir, "onnx")
    m = skpipe.load(r["path"])
    assert m.card.model == "toy" and len(m.classes) == 5
