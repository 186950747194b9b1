"""skpipe's Python API: load a trained model and classify skeletons with its own preprocessing.

    import skpipe
    m = skpipe.load("runs/RUN")               # a run, a checkpoint inside one, or model.onnx
    m.predict("clips.pkl")                     # [{"frame_dir": ..., "top": [(class, p), ...]}, ...]
    m.predict(annotation_dict)                 # one PYSKL annotation, or a list of them
    x, lengths = skpipe.preprocess("clips.pkl", m.card)   # the input of a bare ONNX session

`load("model.pt2", trusted=True)` opens a torch.export program you made yourself (loading one
can run code). Errors are `skpipe.SkpipeError`, with a one-line message.
"""

from pipeline import SkpipeError, __version__
from pipeline.infer.shipped import ModelCard, ShippedModel, load, preprocess

__all__ = ["ModelCard", "ShippedModel", "SkpipeError", "__version__", "load", "preprocess"]
