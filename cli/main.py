"""The `skpipe` command group."""

from __future__ import annotations

import sys
from typing import Any

import click

from cli.data import build_splits, info, ingest, layouts, synth
from cli.evaluate import compare, demo, ensemble, evaluate, export, import_, predict, zoo
from cli.live import live
from cli.train import models, train
from cli.ui import plain
from cli.video import extract, render
from pipeline import __version__


class _Group(click.Group):
    """Every error in one line, usage mistakes included: `Error: <what>` and no usage block, with
    anything that came from the user's input shown escaped (`cli.ui.plain`)."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except click.ClickException as e:
            hint = ""
            if isinstance(e, click.UsageError) and e.ctx is not None:
                hint = f" (see `{e.ctx.command_path} --help`)"
            click.echo(f"Error: {plain(e.format_message())}{hint}", err=True)
            sys.exit(e.exit_code)
        sys.exit(0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="skpipe")
def main() -> None:
    """skpipe: skeleton action recognition from a PYSKL pickle (2D or 3D, any layout) or your own
    videos, via a Zarr tensor cache."""


for command in (synth, extract, render, ingest, build_splits, info, layouts, train, models, evaluate,
                ensemble, compare, predict, export, zoo, import_, live, demo):
    main.add_command(command)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run() -> None:
    """The console script: `skpipe ... | head` ends quietly, as a closed pipe is a normal end, and
    SIGTERM (how a service manager or `kill` stops a process) ends a command as Ctrl-C does: its
    output finished (live --out) or not written at all, nothing half-written left behind."""
    import os
    import signal
    import sys

    signal.signal(signal.SIGTERM, _stop)
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
