"""What `skpipe export` writes: each format and its file suffix. Light, for the CLI's choices."""

from __future__ import annotations

from pathlib import Path

from pipeline import SkpipeError

CLASS_LISTS = ("ntu60", "ntu120", "gesture40")  # bundled names for `import --classes NAME`
FORMATS = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt"}
DEPRECATED = {"torchscript": "TorchScript is deprecated in torch 2.13; --format pt2 is its successor"}
DEFAULT_FORMAT = "pt2"


def export_format(fmt: str | None, out: Path | None) -> str:
    """The format to write: `fmt` where given, else the one `out`'s suffix names, else pt2. A
    format that contradicts the suffix is refused: a `model.onnx` holding a pt2 archive would
    fail, far from here, as "not an ONNX model"."""
    suffix = out.suffix.lower() if out is not None else ""
    named = next((f for f, s in FORMATS.items() if s == suffix), None)
    if fmt is None:
        return named or DEFAULT_FORMAT
    if fmt not in FORMATS:
        raise SkpipeError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if named is not None and named != fmt:
        raise SkpipeError(f"--out {out.name if out else ''} names {named} but --format is {fmt}: "
                          f"drop --format, or write to a {FORMATS[fmt]} file")
    return fmt
