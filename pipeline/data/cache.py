"""Write the tensor cache once (`ingest`), and open it, checked, for every later stage.

Layout of a cache directory (shared/DESIGN.md):
    skeletons.zarr         Zarr v3 array (N, T=300, V=17, C=3), chunked along N only
    index.parquet          one row per sample; row i describes skeletons.zarr[i]
    source_splits.parquet  the named splits found in the pickle (long format: sample, name)
    manifest.json          provenance, preprocessing, array layout, counts, class names
The whole directory is built in a temporary sibling and renamed into place when complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import stat
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from data_manifest import Manifest, ManifestError, legacy_manifest_hash, manifest_hash
from data_manifest.manifest import (
    ARRAY_NAME,
    INDEX_COLUMNS,
    INDEX_NAME,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    OLD_INDEX_NAMES,
    SCHEMA_VERSION,
    SOURCE_SPLITS_NAME,
)
from models.layouts import LayoutError, Skeleton, detect_layout
from pipeline import SkpipeError, __version__
from pipeline.data.preprocess import (
    DTYPES,
    PreprocessConfig,
    RawClip,
    preprocess_batch,
    preprocess_skeleton,
)
from pipeline.files.atomic import atomic_dir, atomic_write_text, check_target, recover_replaced
from pipeline.files.location import (
    MAX_TABLE_BYTES,
    Location,
    exists,
    is_url,
    join,
    read_bytes,
    resolve,
)
from pipeline.source.raw import ProgressFn, RawData, file_sha256, parse_frame_dir, read_raw, short_repr

if TYPE_CHECKING:
    from models.layouts import Layout


@dataclass(frozen=True)
class IngestConfig:
    dtype: str = "float16"
    chunk: int = 64  # samples per Zarr chunk: 64 measured ~45 k samples/s on whole-chunk reads
    zstd_level: int = 1  # measured: same size as level 3 on skeletons (0.217 of float32), faster
    preprocessing: PreprocessConfig = field(default_factory=PreprocessConfig)
    layout: Layout | None = None  # None: the built-in layout with the pickle's number of joints
    persons: int | None = None  # None: 1, or 2 for a 3D pickle where some clip has two

    def __post_init__(self) -> None:
        if self.persons is not None and self.persons not in (1, 2):
            raise SkpipeError(f"--persons must be 1 or 2, got {self.persons}")
        if self.dtype not in DTYPES:
            raise SkpipeError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype}")
        if self.chunk < 1:
            raise SkpipeError(f"--chunk must be >= 1, got {self.chunk}")


@dataclass(frozen=True)
class IngestSummary:
    cache_dir: Path
    skeleton: str  # Skeleton.describe()
    samples: int
    classes: int
    persons_hist: dict[str, int]
    longer_than_max: int
    empty: int
    nonfinite: int
    bytes_on_disk: int
    bytes_float32: int
    seconds: float
    read_seconds: float


def class_names_for(labels: np.ndarray, frame_dirs: list[str], names: list[str] | None) -> list[str]:
    """Class names per label: given (--class-names, a PYSKL label map, or the pickle's `classes`),
    else from `v_<Class>_gNN_cNN`, else class_NNN."""
    num = int(labels.max()) + 1
    if names is not None:
        if len(names) < num:
            raise SkpipeError(f"--class-names lists {len(names)} names but labels go up to {num - 1}")
        return list(names[:num])
    found: dict[int, set[str]] = {}
    for lab, fd in zip(labels.tolist(), frame_dirs, strict=True):
        found.setdefault(lab, set()).add(parse_frame_dir(fd)[0] or "")
    out = []
    for lab in range(num):
        cands = found.get(lab, set())
        out.append(next(iter(cands)) if len(cands) == 1 and "" not in cands else f"class_{lab:03d}")
    if len(set(out)) != len(out):  # two labels share a parsed name: do not guess
        return [f"class_{lab:03d}" for lab in range(num)]
    return out


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _persons_bucket(m: int) -> str:
    return "0" if m == 0 else "1" if m == 1 else "2" if m == 2 else "3-5" if m <= 5 else "6+"


def ingest(
    raw_path: Path,
    cache_dir: Path,
    config: IngestConfig = IngestConfig(),
    force: bool = False,
    class_names: list[str] | None = None,
    progress: ProgressFn | None = None,
) -> IngestSummary:
    """Read, validate and preprocess `raw_path` into a new cache at `cache_dir`, atomically."""
    t0 = time.perf_counter()
    cache_dir = Path(cache_dir)
    if not Path(raw_path).is_file():  # a typo in the input is named before any cache question
        raise SkpipeError(f"{raw_path}: no such file" if not Path(raw_path).exists()
                          else f"{raw_path}: is a directory, expected a pickle file")
    check_target(cache_dir, force, "cache")  # fail before the (long) read
    raw = read_raw(Path(raw_path), progress)
    read_seconds = time.perf_counter() - t0
    anns = raw.annotations
    skeleton = skeleton_for(raw, config)
    n, t_max = len(anns), config.preprocessing.max_frames
    persons = (skeleton.persons,) if skeleton.persons > 1 else ()  # (M,) or no person axis
    row_shape = (*persons, t_max, skeleton.num_joints, skeleton.channels)  # ([M,] T, V, C)
    labels = np.array([int(a["label"]) for a in anns], dtype=np.int64)
    frame_dirs = [a["frame_dir"] for a in anns]
    if class_names is None and raw.classes is not None and len(raw.classes) > labels.max():
        class_names = raw.classes  # the pickle's own `classes` list (JHMDB, NW-UCLA releases)
    names = class_names_for(labels, frame_dirs, class_names)
    rows: list[dict[str, Any]] = []
    with atomic_dir(cache_dir, force, "cache") as tmp:
        arr = zarr.create_array(
            store=str(tmp / ARRAY_NAME),
            shape=(n, *row_shape),
            chunks=(config.chunk, *row_shape),
            dtype=config.dtype,
            # crc32c after zstd: every chunk carries a checksum, checked whenever it is decoded
            compressors=[ZstdCodec(level=config.zstd_level), Crc32cCodec()],
            fill_value=0.0,
            dimension_names=("N", "M", "T", "V", "C") if persons else ("N", "T", "V", "C"),
        )
        block = config.chunk * max(1, 1024 // config.chunk)  # convert many whole chunks at once
        bufs = [np.zeros((min(block, n), *row_shape), np.float32)
                for _ in range(2)]  # (B, [M,] T, V, C) x 2: fill one while the other is written
        pending: Future[list[int]] | None = None
        crcs: list[int] = []
        with ThreadPoolExecutor(1) as writer:  # zarr encodes (zstd, GIL released) meanwhile
            for b, start in enumerate(range(0, n, block)):
                stop, buf = min(start + block, n), bufs[b % 2]
                rows.extend(_convert_block(start, anns[start:stop], names, labels, buf, t_max, skeleton))
                _check_range(buf[: stop - start], config.dtype, start, anns)
                if pending is not None:
                    crcs += pending.result()
                pending = writer.submit(_write_block, arr, start, buf[: stop - start], config.dtype,
                                        config.chunk)
                if progress is not None:
                    progress("convert", stop, n)
            if pending is not None:
                crcs += pending.result()
        index = _index_frame(rows)
        index.to_parquet(tmp / INDEX_NAME, index=False)
        _source_splits_frame(raw, frame_dirs).to_parquet(tmp / SOURCE_SPLITS_NAME, index=False)
        tables = {name: file_sha256(tmp / name) for name in (INDEX_NAME, SOURCE_SPLITS_NAME)}
        manifest = _build_manifest(raw, config, arr, index, names, tables, crcs, skeleton)
        write_manifest(tmp, manifest)
        size = _dir_bytes(tmp)
    n_persons = index["n_persons"].to_numpy()
    hist = {b: 0 for b in ("0", "1", "2", "3-5", "6+")}
    for m in n_persons.tolist():
        hist[_persons_bucket(m)] += 1
    return IngestSummary(
        cache_dir=cache_dir, skeleton=skeleton.describe(), samples=n, classes=len(names), persons_hist=hist,
        longer_than_max=int((index["keypoint_frames"] > t_max).sum()), empty=int((n_persons == 0).sum()),
        nonfinite=int(index["nonfinite"].sum()), bytes_on_disk=size,
        bytes_float32=n * int(np.prod(row_shape)) * 4,
        seconds=time.perf_counter() - t0, read_seconds=read_seconds,
    )


def _convert_block(start: int, anns: list[dict[str, Any]], names: list[str], labels: np.ndarray,
                   out: np.ndarray, t_max: int, skeleton: Skeleton) -> list[dict[str, Any]]:
    """Preprocess a block of annotations into `out` (B, [M,] T, V, C); return their index rows."""
    clips = [RawClip.of(a) for a in anns]
    if skeleton.dims == 3:
        for j, c in enumerate(clips):
            if not np.any(np.nan_to_num(c.keypoint)):
                raise SkpipeError(f"annotation {start + j} ({anns[j]['frame_dir']!r}): every coordinate "
                                  "is zero: a 3D clip with nobody in it cannot be placed")
    if skeleton.is_default:
        infos = preprocess_batch(clips, out, t_max)  # the seed's numbers, fast
    else:
        infos = preprocess_skeleton(clips, out, t_max)
    rows = []
    for j, (ann, info, clip_arrays) in enumerate(zip(anns, infos, clips, strict=True)):
        h, w = clip_arrays.img_shape if skeleton.dims == 2 else (None, None)  # 3D: no image
        i = start + j
        _, group, clip = parse_frame_dir(ann["frame_dir"])  # -1: not a UCF101 name
        tf = ann.get("total_frames", info.frames)
        rows.append({
            "sample": i, "frame_dir": ann["frame_dir"], "label": int(labels[i]),
            "class_name": names[labels[i]], "group": None if group < 0 else group,
            "clip": None if clip < 0 else clip,
            "total_frames": int(tf) if isinstance(tf, int | np.integer) else info.frames,
            "keypoint_frames": info.frames, "valid_frames": info.valid_frames, "n_persons": info.n_persons,
            "person": info.person, "mean_score": info.mean_score if skeleton.score else None,
            "nonfinite": info.nonfinite,
            "img_h": h, "img_w": w,
        })
    return rows


def _check_range(block: np.ndarray, dtype: str, start: int, anns: list[dict[str, Any]]) -> None:
    """Values the cache's dtype cannot hold (float16 tops out at 65,504: 3D coordinates in
    millimetres of a far-off point, or 2D pixels over an img_shape of 1) would be stored as inf
    and the cache called damaged ever after; refused in one line instead."""
    top = float(np.finfo(dtype).max)
    if top >= float(np.finfo(block.dtype).max):
        return  # the block's own dtype holds no larger value (float32: non-finite is zeroed before)
    flat = block.reshape(len(block), -1)  # (B, [M *] T * V * C): a view, no copy of the block
    rows = np.flatnonzero((flat.max(axis=1) > top) | (flat.min(axis=1) < -top))
    if len(rows):
        i = start + int(rows[0])
        raise SkpipeError(f"annotation {i} ({short_repr(anns[i]['frame_dir'])}) holds values beyond "
                          f"{dtype}'s range (|x| > {top:,.0f} after preprocessing); ingest with --dtype "
                          "float32, or fix its coordinates or img_shape")


def _write_block(arr: Any, start: int, block: np.ndarray, dtype: str, chunk: int) -> list[int]:
    """Write whole chunks (B, T, V, C) from `start`, one at a time; return each chunk's CRC-32 as
    stored. One at a time, so that when a write fails (a full disk) no other is still in flight
    to write into the temporary directory after it is removed; measured as fast as writing the
    block at once (zarr's own concurrency), since conversion runs beside the writer thread."""
    stored = block.astype(dtype)
    crcs = []
    for i in range(0, len(stored), chunk):
        arr[start + i : start + i + chunk] = stored[i : i + chunk]
        crcs.append(chunk_crc(stored[i : i + chunk]))
    return crcs


def chunk_crc(block: np.ndarray) -> int:
    """CRC-32 of a chunk's decoded array (C order, as stored)."""
    return zlib.crc32(np.ascontiguousarray(block).data)


def _index_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """index.parquet's table; null where a clip has no value (no UCF101 group, no scores, no
    image in 3D), never a made-up number."""
    df = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    types = {"sample": "int64", "label": "int32", "group": "Int16", "clip": "Int16",
             "total_frames": "int32", "keypoint_frames": "int32", "valid_frames": "int16",
             "n_persons": "int16", "person": "int16", "mean_score": "Float32",
             "nonfinite": "int32", "img_h": "Int32", "img_w": "Int32"}
    return df.astype(types)


def _source_splits_frame(raw: RawData, frame_dirs: list[str]) -> pd.DataFrame:
    pos = {fd: i for i, fd in enumerate(frame_dirs)}
    recs = [(pos[fd], name) for name, members in raw.splits.items() for fd in members]
    return pd.DataFrame(recs, columns=["sample", "name"]).astype({"sample": "int64", "name": "str"})


def preprocessing_of(p: PreprocessConfig, skeleton: Skeleton) -> dict[str, Any]:
    """What ingest did to this skeleton, truthfully: 3D coordinates are kept as given (no
    img_shape), persons without scores are ranked by motion, features are the skeleton's."""
    out = asdict(p)
    coords = ["x", "y", "z"][: skeleton.dims]
    out["features"] = [*coords, "score"] if skeleton.score else coords
    if skeleton.dims == 3:
        out["normalize"] = "none (3D coordinates as given)"
    if not skeleton.score:
        out["person"] = "max_motion"
    if skeleton.persons > 1:
        out["person"] = f"{skeleton.persons} persons, {out['person']} order"
    return out


def _build_manifest(
    raw: RawData, config: IngestConfig, arr: Any, index: pd.DataFrame, names: list[str],
    tables: dict[str, str], crcs: list[int], skeleton: Skeleton,
) -> Manifest:
    t_max = config.preprocessing.max_frames
    return Manifest(
        schema_version=SCHEMA_VERSION,
        skpipe_version=__version__,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        source={"path": str(raw.path), "size": raw.size, "sha256": raw.sha256},
        preprocessing=preprocessing_of(config.preprocessing, skeleton),
        array={"path": ARRAY_NAME, "shape": list(arr.shape), "dtype": config.dtype,
               "chunks": list(arr.chunks), "codec": "zstd+crc32c", "level": config.zstd_level,
               "axes": ["N", "M", "T", "V", "C"] if skeleton.persons > 1 else ["N", "T", "V", "C"]},
        counts={"samples": len(index), "classes": len(names),
                "empty": int((index["n_persons"] == 0).sum()),
                "longer_than_max_frames": int((index["keypoint_frames"] > t_max).sum()),
                "nonfinite_zeroed": int(index["nonfinite"].sum())},
        class_names=names,
        source_splits={name: len(m) for name, m in raw.splits.items()},
        tables=tables,
        chunk_crc32=crcs,
        skeleton=skeleton.to_dict(),
    )


def skeleton_for(raw: RawData, config: IngestConfig) -> Skeleton:
    """The cache's skeleton: the given layout or the built-in one with the pickle's number of
    joints, the pickle's coordinate dimension and scores, and the persons to keep."""
    if config.layout is not None:
        layout = config.layout
        if len(layout["joints"]) != raw.joints:
            raise SkpipeError(f"layout {layout['name']} has {len(layout['joints'])} joints; the pickle's "
                              f"keypoints have {raw.joints}")
    else:
        try:
            layout = detect_layout(raw.joints)
        except LayoutError as e:
            raise SkpipeError(f"the pickle's keypoints: {e}") from None
    persons = config.persons
    if persons is None:
        most = max(a["keypoint"].shape[0] for a in raw.annotations)
        persons = 2 if raw.dims == 3 and most >= 2 else 1
    try:
        return Skeleton(layout, raw.dims, raw.scores, persons)
    except LayoutError as e:
        raise SkpipeError(f"layout: {e}") from None


@dataclass(frozen=True)
class Cache:
    """An opened, checked cache (a local path or an fsspec URL). Read lazily."""

    directory: Location
    manifest: Manifest
    manifest_hash: str
    legacy_hash: str = ""  # what runs of skpipe 0.1 recorded (the manifest file's bytes)

    def built_as(self, recorded: str) -> bool:
        """Whether a run or split that recorded `recorded` was made on this very build."""
        return recorded in (self.manifest_hash, self.legacy_hash)

    def path(self, name: str) -> Location:
        return join(self.directory, name)

    @cached_property
    def index(self) -> pd.DataFrame:
        """index.parquet, its columns named as today (`OLD_INDEX_NAMES`: older caches keep loading)."""
        return self.read_table(INDEX_NAME).rename(columns=OLD_INDEX_NAMES)

    @cached_property
    def source_splits(self) -> pd.DataFrame:
        return self.read_table(SOURCE_SPLITS_NAME)

    def read_table(self, name: str) -> pd.DataFrame:
        """A Parquet file of the cache, checked against its sha256 in the manifest."""
        data = read_bytes(self.path(name), MAX_TABLE_BYTES)
        expected = self.manifest.tables.get(name)
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise SkpipeError(f"cache {self.directory}: {name} does not match its checksum in the "
                              "manifest (damaged or edited); rebuild it with `skpipe ingest --force`")
        try:
            return pd.read_parquet(io.BytesIO(data))
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise SkpipeError(f"cache {self.directory}: {name} is unreadable ({type(e).__name__}); "
                              "rebuild it with `skpipe ingest --force`") from None

    @cached_property
    def skeleton(self) -> Skeleton:
        """What each sample holds: layout, dims, score channel, persons (the seed's by default)."""
        try:
            return Skeleton.from_dict(self.manifest.skeleton)
        except (LayoutError, TypeError) as e:
            raise SkpipeError(f"cache {self.directory}: its manifest's skeleton is malformed ({e})") from None

    def open_array(self) -> Any:
        """Open the Zarr array read-only (cheap; call once per process or worker)."""
        return zarr.open_array(str(self.path(ARRAY_NAME)), mode="r")


def is_cache(directory: Location) -> bool:
    """Whether `directory` holds a cache (its manifest), without reading it."""
    return exists(join(directory, MANIFEST_NAME))


def write_manifest(directory: Path, manifest: Manifest) -> None:
    atomic_write_text(Path(directory) / MANIFEST_NAME, manifest.to_json())


def read_manifest(directory: Location) -> Manifest:
    """The checked manifest of the cache in `directory` (a path or an fsspec URL)."""
    path = join(directory, MANIFEST_NAME)
    if not exists(directory):
        raise SkpipeError(f"no cache at {directory} (run `skpipe ingest RAW.pkl` first, or name the "
                          "cache with --cache)")
    if not exists(path):
        raise SkpipeError(f"{directory} is not a skpipe cache: {MANIFEST_NAME} is missing")
    try:
        return Manifest.from_json(read_bytes(path, MAX_MANIFEST_BYTES))
    except ManifestError as e:
        raise SkpipeError(f"{path}: {e}") from None


def open_cache(cache_dir: Location) -> Cache:
    """Open the cache at `cache_dir`, refusing one whose files disagree with its manifest."""
    cache_dir = resolve(cache_dir)
    if not is_url(cache_dir):
        recover_replaced(Path(cache_dir))  # an ingest --force that died between its two renames
    manifest = read_manifest(cache_dir)
    for name in (ARRAY_NAME, INDEX_NAME, SOURCE_SPLITS_NAME):
        if not exists(join(cache_dir, name)):
            raise SkpipeError(f"cache {cache_dir} is incomplete: {name} is missing (re-run ingest)")
    legacy = legacy_manifest_hash(read_bytes(join(cache_dir, MANIFEST_NAME), MAX_MANIFEST_BYTES))
    cache = Cache(cache_dir, manifest, manifest_hash(manifest), legacy)
    try:
        arr = cache.open_array()
    except Exception as e:  # zarr raises several types for a damaged store
        raise SkpipeError(f"cache {cache_dir}: cannot open {ARRAY_NAME} ({e})") from None
    spec = manifest.array
    if (list(arr.shape) != list(spec["shape"]) or str(arr.dtype) != spec["dtype"]
            or list(arr.chunks) != list(spec["chunks"])):
        raise SkpipeError(
            f"cache {cache_dir}: {ARRAY_NAME} is {arr.shape} {arr.dtype} chunks {arr.chunks}, "
            f"but the manifest says {tuple(spec['shape'])} {spec['dtype']} chunks "
            f"{tuple(spec['chunks'])}; re-run `skpipe ingest --force`"
        )
    rows = len(cache.index)
    if rows != manifest.num_samples:
        raise SkpipeError(
            f"cache {cache_dir}: {INDEX_NAME} has {rows} rows but the array has "
            f"{manifest.num_samples} samples; re-run `skpipe ingest --force`"
        )
    return cache


def read_chunk(cache: Cache, arr: Any, c: int) -> np.ndarray:
    """Chunk `c` of the array (chunk, T, V, C), decoded and checked: a failed checksum or decode,
    or a clip the index says has a person that reads as all zeros (a missing chunk file reads as
    its fill value), is one line naming the chunk, its samples and the fix."""
    size = int(arr.chunks[0])
    lo, hi = c * size, min((c + 1) * size, int(arr.shape[0]))
    where = f"cache {cache.directory}: chunk {c} of {ARRAY_NAME} (samples {lo}-{hi - 1})"
    _check_chunk_file(cache, arr, c, where)
    try:
        block = np.asarray(arr[lo:hi])
    except Exception as e:  # zarr / numcodecs raise several types for a damaged chunk
        raise SkpipeError(f"{where} is damaged ({type(e).__name__}); rebuild with "
                          "`skpipe ingest --force`") from None
    someone = cache.index["n_persons"].to_numpy()[lo:hi] > 0
    if (someone & ~block.reshape(hi - lo, -1).any(axis=1)).any():
        raise SkpipeError(f"{where} is missing or zeroed; rebuild with `skpipe ingest --force`")
    crcs = cache.manifest.chunk_crc32
    if crcs and (c >= len(crcs) or chunk_crc(block) != crcs[c]):
        raise SkpipeError(f"{where} does not hold what was written there (moved, swapped or "
                          "edited); rebuild with `skpipe ingest --force`")
    if not np.isfinite(block).all():
        raise SkpipeError(f"{where} holds non-finite values; rebuild with `skpipe ingest --force`")
    return block


def _check_chunk_file(cache: Cache, arr: Any, c: int, where: str) -> None:
    """A local chunk is a regular file no larger than its zstd frame can be: not a link to a device
    (/dev/zero, a FIFO) that zarr would read without end. A missing one is left to `read_chunk`."""
    if is_url(cache.directory):
        return  # a remote store answers with the object's own size
    key = arr.metadata.encode_chunk_key((c, *(0,) * (arr.ndim - 1)))
    path = Path(cache.directory) / ARRAY_NAME / key
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    except OSError as e:
        raise SkpipeError(f"{where} cannot be read ({e.strerror}); rebuild with "
                          "`skpipe ingest --force`") from None
    raw = math.prod(arr.chunks) * arr.dtype.itemsize
    if not stat.S_ISREG(st.st_mode) or st.st_size > raw + raw // 64 + 4096:  # zstd's worst case, and more
        raise SkpipeError(f"{where} is not a chunk file (a device, a pipe or {st.st_size:,} bytes); rebuild "
                          "with `skpipe ingest --force`")


def verify_cache(cache: Cache, progress: ProgressFn | None = None) -> list[str]:
    """Read every chunk and table of the cache, and the class names against the index; one message
    per damaged part (empty: all good)."""
    problems = []
    arr = cache.open_array()
    chunks = -(-int(arr.shape[0]) // int(arr.chunks[0]))
    for c in range(chunks):
        try:
            read_chunk(cache, arr, c)
        except SkpipeError as e:
            problems.append(str(e))
        if progress is not None:
            progress("verify", c + 1, chunks)
    return problems + _table_problems(cache)


def _table_problems(cache: Cache) -> list[str]:
    """The manifest's class names are the index's (the protocols are `splits.splits_problems`)."""
    problems = []
    names, index = cache.manifest.class_names, cache.index
    labels = index["label"].to_numpy()
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        problems.append(f"cache {cache.directory}: the manifest names {len(names)} classes; index.parquet "
                        f"has label {int(labels.max())}")
    elif any(names[lab] != name for lab, name in zip(labels, index["class_name"], strict=True)):
        problems.append(f"cache {cache.directory}: the manifest's class names differ from index.parquet's")
    return problems


def source_status(manifest: Manifest, check_hash: bool = True, path: Path | None = None) -> tuple[str, str]:
    """('ok'|'changed'|'missing', detail): whether the source pickle (or the pickle at `path`)
    holds what the cache was built from."""
    from pipeline.source.raw import file_sha256

    src = manifest.source
    path = Path(path if path is not None else src["path"])
    if not path.exists():
        return "missing", f"source {path} not found (moved or deleted)"
    size = path.stat().st_size
    if size != src["size"]:
        return "changed", f"source {path} changed since ingest: size {size} != {src['size']}"
    if not check_hash:
        return "ok", f"source {path} has the same size (content not hashed: --no-hash)"
    if file_sha256(path) != src["sha256"]:
        return "changed", f"source {path} changed since ingest: content hash differs"
    return "ok", f"source {path} unchanged (size and sha256 match)"
