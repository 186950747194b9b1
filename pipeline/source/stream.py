"""A network stream (rtsp://, http://, ...) decoded in a child process.

FFmpeg's network demuxers, behind OpenCV, abort the whole process on some malformed answers
(SIGABRT from a garbage RTSP server, found in an adversarial run): nothing in Python can catch
that. So a URL is opened and decoded by a spawned child that hands each frame back over a pipe
as raw bytes behind a fixed header (never a pickle: the child parses what a stranger sends). The
child's death, by any signal, is one line in the parent. `ChildCapture` answers the few calls
`live`'s reader makes of a `cv2.VideoCapture`.
"""

from __future__ import annotations

import select
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from pipeline import SkpipeError

HEADER = struct.Struct("<III")  # height, width, channels of the frame that follows
OPENED = struct.Struct("<?IId")  # opened, width, height, fps
READ, STOP = b"r", b"s"


class ChildCapture:
    """`cv2.VideoCapture(url)` in a child process: isOpened, get (size and fps), read, release.
    The child is this module's `serve` in an isolated interpreter (`python -I`: no current folder,
    no PYTHON* variables on its path; not multiprocessing, which re-imports the caller's script),
    talking over its stdin and stdout; its stderr (FFmpeg's lines) is dropped."""

    def __init__(self, url: str, timeout: float, max_pixels: int) -> None:
        self.url, self.max_pixels = url, max_pixels
        root = str(Path(__file__).resolve().parents[2])  # where `pipeline` is importable from
        code = f"import sys; sys.path.insert(0, {root!r}); from pipeline.source.stream import serve; serve()"
        self._proc = subprocess.Popen([sys.executable, "-I", "-c", code, url], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in: IO[bytes] = self._proc.stdin
        self._out: IO[bytes] = self._proc.stdout
        self._opened, self._size, self._fps = False, (0, 0), 0.0
        self.why = f"nothing answered in {timeout:g} s"  # why it is not open
        if select.select([self._out], [], [], timeout)[0]:
            try:
                opened, w, h, fps = OPENED.unpack(self._exactly(OPENED.size))
                self._opened, self._size, self._fps = opened, (w, h), fps
                self.why = "it cannot be opened"
            except SkpipeError:
                self.why = self.died() or "it cannot be opened"
        if not self._opened:
            self.release()

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's name
        return self._opened

    def get(self, prop: int) -> float:
        import cv2

        return {cv2.CAP_PROP_FRAME_WIDTH: self._size[0], cv2.CAP_PROP_FRAME_HEIGHT: self._size[1],
                cv2.CAP_PROP_FPS: self._fps}.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        """The next frame; (False, None) at the stream's end; one line if the decoder died."""
        try:
            self._in.write(READ)
            self._in.flush()
        except (OSError, ValueError):
            raise SkpipeError(self.died() or "the stream's decoder stopped answering") from None
        h, w, c = HEADER.unpack(self._exactly(HEADER.size))
        if h == 0:
            return False, None
        if h * w > self.max_pixels or c != 3:
            raise SkpipeError(f"a frame of shape ({h}, {w}, {c}) is not a colour video frame")
        data = self._exactly(h * w * c)
        return True, np.frombuffer(data, np.uint8).reshape(h, w, c)  # (H, W, 3) BGR, as OpenCV reads

    def _exactly(self, n: int) -> bytes:
        data = self._out.read(n)
        if data is None or len(data) != n:
            raise SkpipeError(self.died() or "the stream's decoder stopped answering")
        return data

    def died(self) -> str | None:
        """One line if the child ended by a signal or an error, else None."""
        try:
            code = self._proc.wait(1.0)
        except subprocess.TimeoutExpired:
            return None
        if code == 0:
            return None
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the stream's decoder crashed ({name}) on what the server sent"
        return f"the stream's decoder failed (exit {code})"

    def release(self) -> None:
        try:
            self._in.write(STOP)
            self._in.close()
        except (OSError, ValueError):
            pass
        try:
            self._proc.wait(2.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._out.close()


def _serve(url: str, requests: BinaryIO, frames: BinaryIO) -> None:
    """In the child: open `url`, then one frame per request until told to stop or the end."""
    import cv2

    cap = cv2.VideoCapture(url)
    opened = bool(cap.isOpened())
    w, h, fps = 0, 0, 0.0
    if opened:
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    frames.write(OPENED.pack(opened, max(w, 0), max(h, 0), fps if fps == fps else 0.0))  # nan: unknown
    frames.flush()
    try:
        while opened and requests.read(1) == READ:
            ok, frame = cap.read()
            if not ok or frame is None or frame.ndim != 3 or frame.dtype != np.uint8:
                frames.write(HEADER.pack(0, 0, 0))
                break
            frame = np.ascontiguousarray(frame)  # (H, W, C)
            frames.write(HEADER.pack(*frame.shape))
            frames.write(frame.data)
            frames.flush()
        frames.flush()
    except (BrokenPipeError, OSError):
        pass  # the parent went away
    finally:
        cap.release()


def open_capture(source: Any, timeout: float, max_pixels: int) -> Any:
    """OpenCV's capture for a camera or a file, a child's for a URL."""
    if isinstance(source, str) and "://" in source:
        return ChildCapture(source, timeout, max_pixels)
    import cv2

    return cv2.VideoCapture(source)


def serve() -> None:
    """The child's entry: the URL is its one argument; an error is exit 1, which the parent
    reports in one line."""
    try:
        _serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
    except Exception:
        raise SystemExit(1) from None
