"""Small pickles that would exhaust memory or time through allowed globals and opcodes are
refused in one line. Each runs `skpipe ingest` in a child process under a memory limit and a
timeout, so a regression fails here instead of hanging or killing the suite."""

import resource
import subprocess
import sys

import numpy as np
import pytest

LIMIT = 1 << 30  # 1 GiB of address space beyond what torch-free ingest needs is plenty

BOMBS = {
    # LONG_BINPUT 2^28: the C unpickler grows its memo to that many slots
    "memo_index": (b"\x80\x04Nr\x00\x00\x00\x10.", "memo index 268435456 out of sequence"),
    # builtins.list(builtins.range(10**8))
    "list_range": (b"\x80\x04cbuiltins\nlist\ncbuiltins\nrange\nJ\x00\xe1\xf5\x05\x85R\x85R.",
                   "refused to load global 'builtins.range'"),
    # builtins.bytes(10**9)
    "bytes_int": (b"\x80\x04cbuiltins\nbytes\nJ\x00\xca\x9a;\x85R.", r"refused bytes\(\) of int"),
    # _codecs.encode('abc', 'hex'), nestable; punycode is quadratic
    "codec": (b"\x80\x04c_codecs\nencode\nX\x03\x00\x00\x00abcX\x03\x00\x00\x00hex\x86R.",
              "encodes only latin-1"),
    # an empty list memoized, fetched back and appended into: nesting without a visible depth
    "memo_nesting": (b"\x80\x02]q\x00]q\x01h\x00h\x01a.", "APPEND into a container fetched from the memo"),
}


def _strided_bomb() -> bytes:
    """numpy.ndarray(shape, 'f2', buffer, 0, strides=0): T = 3e9 frames declared over 2 bytes."""
    import pickle

    class Strided:
        def __reduce__(self):
            return np.ndarray, ((1, 3_000_000_000, 17, 2), "f2", b"\x00\x00", 0, (0, 0, 0, 0))

    ann = {"frame_dir": "v_A_g01_c01", "label": 0, "keypoint": Strided(),
           "keypoint_score": np.zeros((1, 3_000_000_000 // 10**9, 17), np.float16), "img_shape": (256, 340)}
    return pickle.dumps([ann], protocol=4)


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT * 4, LIMIT * 4))


@pytest.mark.parametrize("name", [*BOMBS, "strided"])
def test_bombs_are_refused_in_one_line(tmp_path, name):
    data, message = BOMBS[name] if name in BOMBS else (_strided_bomb(), "declares .* frames|plain arrays")
    raw = tmp_path / f"{name}.pkl"
    raw.write_bytes(data)
    p = subprocess.run([sys.executable, "-m", "cli.main", "ingest", str(raw), "--cache", str(tmp_path / "c")],
                       capture_output=True, text=True, timeout=120, preexec_fn=_limit)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error: "), p.stderr[-500:]
    import re

    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "c").exists()
