"""Models: the building blocks of ECAPA-TDNN (``layers``, ``pooling``), the model (``ecapa``),
the log-mel frontend (``frontend``) and ``Embedder`` (frontend + model as one module). Torch
only: nothing here reads files, and the only other part of the package it imports is
``errors``."""
