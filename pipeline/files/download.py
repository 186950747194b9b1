"""Downloads into skpipe's cache folder: bounded, resumable, checked, and written atomically.

A file is fetched over http(s) into `<home>/downloads/<name>.part`, resumed from where it
stopped (an HTTP Range request) when the server allows, and renamed to `<name>` only once it is
whole and, where a digest or a digest prefix is known, matches it: nothing half-written or
unchecked ever carries the final name. Sizes are bounded before and while reading (the declared
Content-Length and the bytes actually received), every connect and read has a timeout, and
redirects are bounded. `mirror` rewrites a published base address onto a local or company mirror
(air-gapped sites, and the tests' local server).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from pipeline import SkpipeError

MAX_DOWNLOAD_BYTES = 1 << 30  # the largest skeleton checkpoints are tens of MB
TIMEOUT_S = 30.0  # connect and each read
MAX_REDIRECTS = 5
CHUNK = 1 << 16
HOME_ENV = "SKPIPE_HOME"
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")  # MMAction2's ..._20221228-86e1e77a.pth

BytesFetched = Callable[[int, int | None], None]  # bytes so far, total (None: not declared)


def home() -> Path:
    """skpipe's cache folder: $SKPIPE_HOME, else ~/.cache/skpipe."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "skpipe")


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def hash_prefix(name: str) -> str | None:
    """The sha256 prefix a file name carries (`...-86e1e77a.pth`), or None."""
    m = HASH_IN_NAME.search(name)
    return m[1] if m else None


def mirrored(url: str, mirror: str | None, base: str) -> str:
    """`url` with its published `base` replaced by `mirror` (None: as published)."""
    if mirror is None:
        return url
    if not is_url(mirror):
        raise SkpipeError(f"--mirror {mirror!r}: not an http(s) address")
    return mirror.rstrip("/") + "/" + url[len(base):].lstrip("/") if url.startswith(base) else url


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS


def _open(url: str, start: int, timeout: float) -> tuple[object, int | None, bool]:
    """(response, total size where declared, whether it resumes at `start`)."""
    request = urllib.request.Request(url, headers={"User-Agent": "skpipe", **(
        {"Range": f"bytes={start}-"} if start else {})})
    opener = urllib.request.build_opener(_Redirects())
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # the part is already whole
            return None, start, True
        what = "a redirect loop" if e.code in (301, 302, 303, 307, 308) else f"HTTP {e.code}"
        raise SkpipeError(f"{url}: {what} ({e.reason})") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise SkpipeError(f"{url}: cannot connect ({str(reason)[:100]})") from None
    resumed = start > 0 and getattr(response, "status", 200) == 206
    length = response.headers.get("Content-Length")
    try:
        declared = int(length) + (start if resumed else 0) if length is not None else None
    except ValueError:
        declared = None
    return response, declared, resumed


def download(url: str, name: str, expect_sha256: str | None = None, max_bytes: int = MAX_DOWNLOAD_BYTES,
             progress: BytesFetched | None = None, timeout: float = TIMEOUT_S, folder: Path | None = None
             ) -> Path:
    """The file at `url` as `<folder>/<name>` (default: skpipe's downloads folder), fetched only
    when not there already; checked against `expect_sha256` (a prefix or a whole digest); one
    line for every failure, with nothing left under the final name."""
    if not is_url(url):
        raise SkpipeError(f"{url!r}: not an http(s) address")
    if "/" in name or name in ("", ".", ".."):
        raise SkpipeError(f"{name!r}: not a file name")
    folder = folder or home() / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    target, part = folder / name, folder / f"{name}.part"
    if target.is_file():
        _check(target, expect_sha256, url, remove=False)
        return target
    start = part.stat().st_size if part.is_file() else 0
    response, total, resumed = _open(url, start, timeout)
    if total is not None and total > max_bytes:
        raise SkpipeError(f"{url}: {total:,} bytes declared, more than the {max_bytes:,} a checkpoint may be")
    if response is not None:
        _receive(response, part, start if resumed else 0, total, max_bytes, url, progress)
    if total is not None and part.stat().st_size != total:
        raise SkpipeError(f"{url}: the transfer ended at {part.stat().st_size:,} of {total:,} bytes; run the "
                          "same command again to resume")
    _check(part, expect_sha256, url, remove=True)
    os.replace(part, target)
    return target


def _receive(response: object, part: Path, start: int, total: int | None, max_bytes: int, url: str,
             progress: BytesFetched | None) -> None:
    done = start
    try:
        with open(part, "ab" if start else "wb") as f:
            while True:
                block = response.read(CHUNK)  # type: ignore[attr-defined]
                if not block:
                    break
                done += len(block)
                if done > max_bytes:
                    f.close()
                    part.unlink(missing_ok=True)
                    raise SkpipeError(f"{url}: more than {max_bytes:,} bytes; refused")
                f.write(block)
                if progress is not None:
                    progress(done, total)
    except (TimeoutError, OSError, http.client.HTTPException) as e:
        raise SkpipeError(f"{url}: the transfer stalled or broke at {done:,} bytes ({type(e).__name__}); "
                          "run the same command again to resume") from None
    finally:
        response.close()  # type: ignore[attr-defined]


def _check(path: Path, expect: str | None, url: str, remove: bool) -> None:
    """`path`'s sha256 against `expect` (a prefix or the whole digest); a mismatch is one line
    and the file is removed (`remove`), so a wrong download is never read."""
    if not expect:
        return
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if not h.hexdigest().startswith(expect.lower()):
        if remove:
            path.unlink(missing_ok=True)
        got = h.hexdigest()[: len(expect)]
        if remove:
            raise SkpipeError(f"{url}: its sha256 begins {got}, not {expect} as published: a damaged or "
                              "substituted file (removed)")
        raise SkpipeError(f"{path}: its sha256 begins {got}, not {expect}: delete it and import again")
