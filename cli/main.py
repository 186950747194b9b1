"""The `skpipe` command group."""

from __future__ import annotations

import click

from cli.data import build_splits, info, ingest, synth
from cli.evaluate import compare, demo, evaluate, predict
from cli.train import models, train
from pipeline import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="skpipe")
def main() -> None:
    """skpipe: skeleton action recognition from a PYSKL 2D pickle, via a Zarr tensor cache."""


for command in (synth, ingest, build_splits, info, train, models, evaluate, compare, predict, demo):
    main.add_command(command)


if __name__ == "__main__":  # `python -m cli.main`, as torchrun's launcher starts each rank
    main()
