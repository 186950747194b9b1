"""skpipe stages: read the raw pickle, preprocess, write the cache, splits, load, train, evaluate.

Skeleton axes are named once, here, and used in shape comments everywhere:
    N  samples (clips)          M  person slots in a frame
    T  frames                   V  joints (17, COCO order)
    C  channels (2 = x, y in the raw pickle; 3 = x, y, score in the cache)
"""

__version__ = "0.1.0"


class SkpipeError(Exception):
    """A user-facing error: bad input, a stale cache, a refused overwrite.

    The CLI prints its message as one line and exits non-zero, without a traceback.
    """
