"""What `skpipe export` writes: each format and its file suffix. Light, for the CLI's choices."""

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
