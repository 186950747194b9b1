"""skpipe's Python API: load a trained model and classify skeletons with its own preprocessing.

    import skpipe
    m = skpipe.load("runs/RUN")               # a run, a checkpoint inside one, or model.onnx
    m.predict("clips.pkl")                     # [{"frame_dir": ..., "top": [{"class", "probability"}]}]
    m.predict(annotation_dict)                 # one PYSKL annotation, or a list of them
    for clip in m.iter_predict("clips.pkl", window=30, stride=10): ...   # as each batch is done
    for x, lengths in skpipe.batches("clips.pkl", m.card): ...         # a bare ONNX session's input

`load("model.pt2", trusted=True)` opens a torch.export program you made yourself (loading one
can run code). Errors are `skpipe.SkpipeError`, with a one-line message.
"""

from pipeline import SkpipeError, __version__
from pipeline.infer.shipped import ModelCard, ShippedModel, batches, load, preprocess

__all__ = ["ModelCard", "ShippedModel", "SkpipeError", "__version__", "batches", "load", "preprocess"]
