"""What `skpipe export` writes: each format and its file suffix. Light, for the CLI's choices."""

CLASS_LISTS = ("ntu60", "ntu120", "gesture40")  # bundled names for `import --classes NAME`
FORMATS = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt"}
DEPRECATED = {"torchscript": "TorchScript is deprecated in torch 2.13; --format pt2 is its successor"}
