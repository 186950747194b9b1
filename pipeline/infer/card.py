"""The model card: what an exported (or imported) model is and how to feed it. The one owner of
the card's JSON, in the ONNX metadata (key `skpipe`), the `.pt2` extra file `skpipe.json` and an
imported run's `card.json`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from models.layouts import LayoutError, Skeleton
from pipeline import MAX_CLIPS, MAX_FED_FRAMES, SkpipeError, __version__
from pipeline.data.preprocess import DTYPES
from pipeline.inputs.features import FEATS, InputSpec
from pipeline.run.config import MAX_CLASSES
from pipeline.source.raw import short_repr

CARD_KEY = "skpipe"  # ONNX metadata key
CARD_FILE = "skpipe.json"  # extra file of a .pt2 / TorchScript archive
MAX_CARD_BYTES = 4 << 20
RENAMED = {"clips": "num_clips"}  # cards written before the word table, read with today's names


@dataclass(frozen=True)
class ModelCard:
    """What an exported model is and how to feed it; the one owner of the card's JSON."""

    model: str
    class_names: tuple[str, ...]
    skeleton: dict[str, Any]  # layout, dims, score, persons (Skeleton's fields, always written out)
    cache_dtype: str
    frames: int
    feats: str
    normalize: str
    num_clips: int  # K temporal clips averaged, as the run evaluated (--clips)
    inputs: tuple[str, ...]  # the graph's input names: "x", and "lengths" where the model reads it
    format: str = ""
    skpipe_version: str = __version__
    pyskl: dict[str, Any] = field(default_factory=dict)  # an imported model's PYSKL test pipeline

    @property
    def input(self) -> Skeleton:
        return Skeleton(**self.skeleton)

    def input_spec(self) -> InputSpec:
        return InputSpec(frames=self.frames, feats=self.feats, normalize=self.normalize, skeleton=self.input)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        """A card read from a file, every field checked before it is used."""
        if len(text) > MAX_CARD_BYTES:
            raise SkpipeError("its skpipe card is larger than any card")
        try:
            d = json.loads(text)
            d = {RENAMED.get(k, k): v for k, v in d.items()} if isinstance(d, dict) else d
            card = cls(**{**d, "class_names": tuple(d["class_names"]), "inputs": tuple(d["inputs"])})
            card._check()
        except SkpipeError:
            raise
        except (ValueError, TypeError, KeyError, RecursionError, LayoutError) as e:
            raise SkpipeError(f"its skpipe card is malformed ({short_repr(str(e), 80)})") from None
        return card

    def _check(self) -> None:
        n = len(self.class_names)
        if not 1 <= n <= MAX_CLASSES or not all(isinstance(c, str) for c in self.class_names):
            raise ValueError(f"class_names must be 1 to {MAX_CLASSES:,} names")
        ints = (self.frames, self.num_clips)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise ValueError("frames and num_clips must be integers")
        if not (1 <= self.frames <= MAX_FED_FRAMES and 1 <= self.num_clips <= MAX_CLIPS):
            raise ValueError("frames or num_clips out of range")
        if self.cache_dtype not in DTYPES or self.feats not in FEATS:
            raise ValueError("unknown cache dtype or stream")
        if not set(self.inputs) <= {"x", "lengths"} or "x" not in self.inputs:
            raise ValueError("inputs must be x [and lengths]")
        self.input_spec()  # checks the skeleton and the normalisation
        if not isinstance(self.pyskl, dict):
            raise ValueError("pyskl must be a table")
        if self.pyskl:
            from pipeline.inputs.pyskl import PysklPipeline

            PysklPipeline.from_dict(self.pyskl)


def card_of(config: Any, fmt: str, inputs: Sequence[str]) -> ModelCard:
    """The card of a run's model (`config`: its RunConfig) exported as `fmt`."""
    t, sk = config.train, config.input
    return ModelCard(model=t.model, class_names=tuple(config.class_names),
                     skeleton={"layout": sk.layout, "dims": sk.dims, "score": sk.score,
                               "persons": sk.persons},
                     cache_dtype=config.cache_dtype, frames=t.frames, feats=t.feats, normalize=t.normalize,
                     num_clips=t.num_clips, inputs=tuple(inputs), format=fmt, pyskl=dict(config.pyskl))
