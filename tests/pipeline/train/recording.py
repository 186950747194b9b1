"""`skpipe train` under torchrun, recording for the distributed tests what each rank did: the
samples it trained on per epoch and the weights it validated with. Run as a script (torchrun's
workers import it), so the training loop itself carries no test hook.

    python -m torch.distributed.run ... tests/pipeline/train/recording.py OUT_DIR train ARGS...
"""

import os
import sys
from pathlib import Path

import numpy as np
import torch

import pipeline.train.fit as fit_module
from cli.main import main


def record(out: Path) -> None:
    rank = int(os.environ.get("RANK", "0"))
    train_one_epoch, evaluate = fit_module.train_one_epoch, fit_module.evaluate
    epochs = {"train": 0, "val": 0}

    def recorded_train(model, optimizer, batches, *args, **kwargs):
        epochs["train"] += 1
        seen: list[np.ndarray] = []

        def logged():
            for b in batches:
                seen.append(b[3].numpy())
                yield b

        try:
            return train_one_epoch(model, optimizer, logged(), *args, **kwargs)
        finally:
            np.save(out / f"rank{rank}-epoch{epochs['train']}.npy",
                    np.concatenate(seen) if seen else np.zeros(0))

    def recorded_evaluate(model, *args, **kwargs):
        epochs["val"] += 1
        flat = [v.detach().double().flatten().cpu() for v in model.state_dict().values()]
        np.save(out / f"rank{rank}-state{epochs['val']}.npy", torch.cat(flat).numpy())
        return evaluate(model, *args, **kwargs)

    fit_module.train_one_epoch, fit_module.evaluate = recorded_train, recorded_evaluate


if __name__ == "__main__":
    record(Path(sys.argv[1]))
    sys.argv = ["skpipe", *sys.argv[2:]]
    main()
