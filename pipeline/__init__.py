"""skpipe stages: read the raw pickle or videos, preprocess, write the cache, splits, load, train,
evaluate, predict, export, import and run live.

Skeleton axes are named once, here, and used in shape comments everywhere:
    N  samples (clips)          M  person slots in a frame
    T  frames                   V  joints (the layout's: 17 for COCO, 20 for Kinect-20, ...)
    C  channels: coordinates (x, y or x, y, z), then a score where the skeleton has one
    K  temporal clips of one sample averaged at test (`num_clips`)
"""

__version__ = "0.1.0"

# Limits on what an option or a file may ask for, checked against these everywhere
MAX_FED_FRAMES = 10_000  # T fed to a model: --frames, --window, a card's frames, PYSKL's clip_len
MAX_CLIPS = 100  # K temporal clips averaged: --clips, num_clips


class SkpipeError(Exception):
    """A user-facing error: bad input, a stale cache, a refused overwrite.

    The CLI prints its message as one line and exits non-zero, without a traceback.
    """
