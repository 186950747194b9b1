"""Issue 29's training pieces: a budget in samples (--repeat), `auto` precision from the CPU's
flags, proper 3D rotations, and their bad values in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.main import main
from pipeline import SkpipeError
from pipeline.inputs.augment import Augment, rotations_3d
from pipeline.run.options import TrainConfig
from pipeline.run.runtime import choose_precision, inference_precision, native_bf16
from pipeline.train.fit import fit

CPU = torch.device("cpu")


def test_auto_precision_follows_the_cpu_flags():
    plain = frozenset({"fma", "avx", "avx2"})
    assert choose_precision("auto", CPU, plain)[0] == "fp32"
    assert "no native bf16" in choose_precision("auto", CPU, plain)[1]
    for flag in ("avx512_bf16", "amx_bf16"):
        assert choose_precision("auto", CPU, plain | {flag}) == ("bf16", "auto: native bf16 here")
    precision, why = choose_precision("bf16", CPU, plain)  # asked for: runs, with the measured cost
    assert precision == "bf16" and why.startswith("warning: bf16 is emulated") and "7.6x" in why
    assert choose_precision("fp32", CPU, plain | {"amx_bf16"})[0] == "fp32"
    assert native_bf16(CPU, plain) is False


def test_inference_is_fp32_unless_asked_and_bf16_only_where_native():
    plain = frozenset({"fma", "avx", "avx2"})
    for flags in (plain, plain | {"amx_bf16"}):
        assert inference_precision("fp32", CPU, flags) == "fp32"  # the default, whatever the run trained in
    assert inference_precision("bf16", CPU, plain | {"avx512_bf16"}) == "bf16"
    with pytest.raises(SkpipeError, match="no native bf16.*7.6x"):
        inference_precision("bf16", CPU, plain)
    with pytest.raises(SkpipeError, match="fp32, bf16"):
        inference_precision("auto", CPU, plain)  # a training word, not an inference one


def test_rotations_are_proper():
    rng = np.random.default_rng(0)
    r = rotations_3d(rng.uniform(-np.pi, np.pi, (64, 3)))  # (B, 3, 3)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-9)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    v = rng.normal(size=(64, 3))
    turned = np.einsum("bij,bj->bi", r, v)
    np.testing.assert_allclose(np.linalg.norm(turned, axis=1), np.linalg.norm(v, axis=1))


def test_bad_budget_and_augmentation_values_are_one_line():
    with pytest.raises(SkpipeError, match="--repeat must be >= 1"):
        TrainConfig(model="stgcnpp", repeat=0)
    with pytest.raises(SkpipeError, match="--rotate must be at most 180"):
        Augment(rotate=181)


def test_repeat_counts_samples_exactly(synth_cache, tmp_path):
    seen: list[int] = []

    def on(name, info):  # noqa: ANN001
        if name == "step":
            seen.append(info["step"])

    cfg = TrainConfig(model="stgcn", cache=str(synth_cache), out=str(tmp_path), epochs=1, frames=8, threads=1,
                      batch_size=16, repeat=3, precision="fp32")
    s = fit(cfg, event=on)
    from pipeline.run.config import open_run

    config = open_run(s.run_dir).config
    n = config.train_samples
    steps = -(-n // 16)
    assert config.train.repeat == 3 and max(seen) == 3 * steps  # three whole passes in one epoch


def test_the_header_names_the_budget_and_the_precision(synth_cache, tmp_path):
    r = CliRunner().invoke(main, ["train", "stgcn", "--cache", str(synth_cache), "--epochs", "1", "--frames",
                                  "8", "--repeat", "2", "--threads", "1", "--precision", "auto",
                                  "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "x 2 passes x 1 epochs" in r.output and "(auto:" in r.output
    r = CliRunner().invoke(main, ["train", "stgcn", "--cache", str(synth_cache), "--repeat", "0"])
    assert r.exit_code == 1 and r.output.strip() == "Error: --repeat must be >= 1, got 0"
