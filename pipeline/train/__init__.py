"""Train: `skpipe train` (fit, resume, distributed data parallel)."""
