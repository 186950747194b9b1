"""The `skpipe` command group."""

from __future__ import annotations

import click

from cli.data import build_splits, info, ingest, synth
from cli.evaluate import compare, demo, ensemble, evaluate, export, predict
from cli.train import models, train
from pipeline import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="skpipe")
def main() -> None:
    """skpipe: skeleton action recognition from a PYSKL 2D pickle, via a Zarr tensor cache."""


for command in (synth, ingest, build_splits, info, train, models, evaluate, ensemble, compare, predict,
                export, demo):
    main.add_command(command)


def run() -> None:
    """The console script: `skpipe ... | head` ends quietly, as a closed pipe is a normal end."""
    import os
    import sys

    try:
        main()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise SystemExit(0) from None
    except SystemExit:
        # click met a closed pipe, wrapped stdout and exits 1 (named, not imported: click 8.3
        # deprecates the class)
        if type(sys.stdout).__name__ == "PacifyFlushWrapper":
            raise SystemExit(0) from None
        raise


if __name__ == "__main__":  # `python -m cli.main`, as torchrun's launcher starts each rank
    run()
