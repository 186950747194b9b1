"""The shared inference path: K clips folded into the batch equal K separate passes averaged;
models load from a checkpoint's own arguments; library calls leave the process settings alone."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from models.layouts import Skeleton
from pipeline import SkpipeError
from pipeline.infer.card import ModelCard
from pipeline.infer.inference import load_model, load_run_model
from pipeline.infer.shipped import ShippedModel
from pipeline.inputs.batch import clips_input, take_frames
from pipeline.inputs.features import InputSpec
from pipeline.inputs.transforms import uniform_indices
from pipeline.run.config import ModelArgs, open_run
from pipeline.run.forward import clip_logits
from pipeline.train.fit import TrainConfig, fit


class FirstFrame(torch.nn.Module):
    """Known logits: (3x, 0, -3x) for x = the first frame's first coordinate."""

    def forward(self, x, lengths=None):
        first = x[:, 0, 0, 0]  # (B,)
        return torch.stack([3 * first, torch.zeros_like(first), -3 * first], 1)


def rows(n=3, t=40, seed=0):
    """(n, t, V, C) rows whose frame f holds f / t (every joint), all frames valid but the last 5."""
    x = np.broadcast_to((np.arange(t) / t)[None, :, None, None], (n, t, 17, 3)).astype(np.float32)
    return torch.from_numpy(x.copy()), np.array([t - 5] * n)


def one_clip(x, valid, spec, k, num_clips):
    """Clip k of K of every row by hand: its fixed frames, taken alone."""
    return take_frames(x, uniform_indices(valid, spec.frames, None, k, num_clips)).numpy()


def test_folded_layout_is_sample_major():
    x, valid = rows()
    spec = InputSpec(frames=8)
    xk, lk = clips_input(x, valid, spec, 3)
    assert xk.shape == (9, 8, 17, 3) and lk.shape == (9,)
    for k in range(3):
        one = one_clip(x, valid, spec, k, 3)
        for b in range(3):
            np.testing.assert_array_equal(xk[b * 3 + k].numpy(), one[b])


def test_folding_equals_averaging_separate_passes_by_hand():
    x, valid = rows()
    spec, model, k = InputSpec(frames=8), FirstFrame(), 4
    xk, lk = clips_input(x, valid, spec, k)
    skeleton = {"layout": Skeleton().layout, "dims": 2, "score": True, "persons": 1}
    card = ModelCard("toy", ("a", "b", "c"), skeleton, "float32", 8, "j", "none", k, ("x", "lengths"))
    got = ShippedModel(card, model, "torch").fed_probabilities(xk, lk, k)
    firsts = [one_clip(x, valid, spec, c, k)[:, 0, 0, 0] for c in range(k)]  # K x (B,)
    logits = np.stack([np.stack([3 * f, 0 * f, -3 * f], 1) for f in firsts])  # (K, B, 3)
    soft = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(got, soft.mean(0), rtol=1e-6)
    assert len({float(f[0]) for f in firsts}) == k  # the clips really differ
    assert clip_logits(model, xk, lk, k).shape == (3, k, 3)
    with pytest.raises(ValueError, match="whole number"):
        clip_logits(model, xk[:5], lk[:5], k)


@pytest.fixture(scope="module")
def trained(synth_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("inf")
    return fit(TrainConfig(model="stgcn", cache=str(synth_cache), out=str(out), epochs=1, frames=8,
                           threads=1)).run_dir


def test_a_checkpoint_copied_out_of_its_run_loads(trained, tmp_path):
    copy = shutil.copy(trained / "checkpoints" / "best.pt", tmp_path / "model.pt")
    model, args = load_model(copy)
    assert args == ModelArgs("stgcn", 5, 0.5)
    ref, _ = load_run_model(open_run(trained))
    x = torch.randn(2, 8, 17, 3)
    torch.testing.assert_close(model(x), ref(x))
    with pytest.raises(SkpipeError, match="holds a stgcn model of 5 classes; the run is stgcn with 7"):
        load_model(copy, ModelArgs("stgcn", 7))


def test_weights_that_do_not_fit_are_one_line(trained, tmp_path):
    ckpt = torch.load(trained / "checkpoints" / "best.pt", weights_only=True)
    ckpt["model_args"]["name"] = "lstm"
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(SkpipeError, match="do not fit a lstm model") as e:
        load_model(tmp_path / "bad.pt")
    assert "\n" not in str(e.value)


def test_library_calls_change_no_process_settings(trained):
    """fit, evaluate and predict leave torch's threads and matplotlib's backend as they were."""
    code = f"""
import sys, torch
torch.set_num_threads(1)
from pipeline.train.fit import TrainConfig, fit
from pipeline.infer.evaluate import evaluate_run
from pipeline.run.config import open_run
run = open_run({str(trained)!r})
r = fit(TrainConfig(model="stgcn", cache=run.config.cache, out={str(trained.parent)!r}, epochs=1,
                    frames=8, threads=2))
evaluate_run(r.run_dir, "val")
assert (r.run_dir / "curves.png").exists() and (r.run_dir / "eval/val/confusion.png").exists()
print(torch.get_num_threads(), "matplotlib.pyplot" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "False"]


def test_prefetch_keeps_order_raises_in_place_and_stops_early():
    import threading
    import time

    from pipeline.infer.inference import prefetch

    assert list(prefetch(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise SkpipeError("bad clip 2")

    got = []
    with pytest.raises(SkpipeError, match="bad clip 2"):
        for v in prefetch(failing()):
            got.append(v)
    assert got == [1]
    made = []

    def endless():
        while True:
            made.append(1)
            yield len(made)

    it = prefetch(endless(), depth=2)
    assert next(it) == 1
    it.close()  # the consumer stops: the producer must stop too, holding at most `depth` more
    time.sleep(0.3)
    n = len(made)
    time.sleep(0.3)
    assert len(made) == n <= 4
    assert not any(t.name == "skpipe-prefetch" for t in threading.enumerate())
