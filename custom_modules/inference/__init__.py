"""Inference: running a trained model. The pretrained folder (``pretrained``: write it, build
an ``Embedder`` from it), embedding many utterances once each in length-sorted batches with a
cache (``embedding``), and ONNX / TorchScript export (``export``). No scoring and no decisions:
those are ``scoring`` (applied), ``evaluation`` (fitted) and ``interface``."""
