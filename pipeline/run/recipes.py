"""Training recipes: named sets of train options. Explicit options always win over a recipe.

`seed` is the study's table exactly (TrainConfig's defaults, in fp32 as the study ran).
`recommended` is the combination that gave the best validation accuracy within about 12
CPU-minutes on real data (JHMDB-14 split 1, chosen on val only; BENCHMARKS.md), meant for
`stgcnpp`. Augmentation is off in it: flips, rotations and scaling cost 9 points of val accuracy
in its 30 epochs. Its precision is `auto`: bf16 where native, fp32 elsewhere.
"""

from __future__ import annotations

from typing import Any

from pipeline import SkpipeError

RECIPES: dict[str, dict[str, Any]] = {
    "seed": {},  # TrainConfig's defaults, fp32 as the study ran; every other recipe picks by the hardware
    "recommended": {
        "frames": 32, "precision": "auto", "optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4,
        "schedule": "cosine", "warmup": 2, "epochs": 30, "label_smoothing": 0.1, "dropout": 0.0,
        "normalize": "pyskl", "flip": 0.0, "rotate": 0.0, "scale": 0.0, "shift": 0.0,
        "num_clips": 5,
    },
    # CTR-GCN's NW-UCLA recipe on ST-GCN++ for small 3D sets (docs/training.md: what each
    # ingredient did on a val of whole views): centred, rotated about x and y by up to 60 degrees,
    # each clip's axes min-max scaled to [-1, 1]; 52 frames; Nesterov SGD at lr 0.1, batch 16; a
    # budget of 66k sample passes whatever the set's size. CTR-GCN's random frame draw is left out:
    # on NW-UCLA 3D with val = one whole training view (benchmarks.small3d), uniform frames gave
    # 67.1 % val against 54.7 +- 5.9 % with the random draw (15k samples)
    "small3d": {
        "frames": 52, "precision": "auto", "optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-4,
        "batch_size": 16, "schedule": "cosine", "warmup": 5, "epochs": 65, "label_smoothing": 0.0,
        "dropout": 0.0, "normalize": "minmax", "flip": 0.0, "rotate": 60.0, "rotate_axes": "xy",
        "scale": 0.0, "shift": 0.0, "sampling": "uniform", "budget": 66_000, "num_clips": 1,
    },
}


def recipe_options(recipe: str, explicit: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig keyword arguments: the recipe's values, then the explicit options over them."""
    if recipe not in RECIPES:
        raise SkpipeError(f"--recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    return {**RECIPES[recipe], **{k: v for k, v in explicit.items() if v is not None}, "recipe": recipe}
