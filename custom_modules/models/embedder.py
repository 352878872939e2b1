"""``Embedder``: waveforms in, speaker embeddings out, as one ``nn.Module``.

It exists because every consumer of a model needs the same three steps in the same order
(features, model, optional embedding normalisation) at exact lengths: validation during
training, verification, visualisation, the ONNX / TorchScript export and ``SpeakerEncoder``
all embed through it, so an utterance gets the same embedding everywhere. It holds no file
handling and no decisions; ``custom_modules.inference.pretrained`` builds it from a folder and
``SpeakerEncoder`` adds files, scoring and enrolment on top.

Example
-------
>>> import torch
>>> from custom_modules.models.ecapa import ECAPA_TDNN
>>> from custom_modules.models.frontend import MelFrontend
>>> embedder = Embedder(MelFrontend(n_mels=40), ECAPA_TDNN(40, lin_neurons=24)).eval()
>>> embedder(torch.randn(2, 16000), torch.tensor([16000, 9000])).shape
torch.Size([2, 24])
"""

import hashlib
import itertools
import json

import torch


class Embedder(torch.nn.Module):
    """Frontend -> model -> optional embedding normalisation.

    Arguments
    ---------
    compute_features : torch.nn.Module
        Waveforms ``(batch, samples)`` -> features ``(batch, frames, n_mels)``, with a
        ``frame_counts(samples)`` method (``MelFrontend``).
    embedding_model : torch.nn.Module
        Features -> ``(batch, 1, dim)`` (``ECAPA_TDNN``).
    mean_var_norm_emb : torch.nn.Module, optional
        SpeechBrain's global embedding normalisation, for folders imported from SpeechBrain
        that ask for it.
    threshold : float, optional
        The decision threshold saved with the model (validation EER threshold).
    sample_rate : int
        Rate the frontend expects.
    precision : str
        How ``embedding_model`` computes (``inference.precision``): ``fp32`` for the model as
        trained.
    source_fingerprint : str, optional
        The fingerprint of the weights a converted ``embedding_model`` was made from (its own
        tensors are transformed copies); ``None``: this embedder's own weights.
    """

    def __init__(self, compute_features: torch.nn.Module, embedding_model: torch.nn.Module,
                 mean_var_norm_emb: torch.nn.Module | None = None, threshold: float | None = None,
                 sample_rate: int = 16000, precision: str = "fp32",
                 source_fingerprint: str | None = None):
        super().__init__()
        self.compute_features = compute_features
        self.embedding_model = embedding_model
        self.mean_var_norm_emb = mean_var_norm_emb
        self.threshold = threshold
        self.sample_rate = sample_rate
        self.precision = precision
        self.source_fingerprint = source_fingerprint

    @property
    def device(self) -> torch.device:
        """Where the embedder's tensors are."""
        return next(itertools.chain(self.parameters(), self.buffers())).device

    def fingerprint(self) -> str:
        """Short hash of everything that makes the embeddings (the same for every precision
        of one model): the weights and buffers, the frontend's and the model's settings, the
        rate audio is read at and whether embeddings are normalised. Names embedding caches,
        ties enrolments to a model: a folder whose YAML changes ``hop_length`` or
        ``sample_rate`` with the same weights is another model."""
        if self.source_fingerprint is not None:
            return self.source_fingerprint
        model = dict(getattr(self.embedding_model, "config", None) or {})
        model.pop("dropout", None)                 # no effect on an embedding
        settings = {"sample_rate": self.sample_rate,
                    "frontend": getattr(self.compute_features, "config", None),
                    "model": model, "embedding_norm": self.mean_var_norm_emb is not None}
        digest = hashlib.sha1(json.dumps(_numbers_as_floats(settings), sort_keys=True,
                                         default=str).encode())
        norm = self.mean_var_norm_emb           # SpeechBrain's keeps its statistics outside
        for name in ("glob_mean", "glob_std"):  # its state_dict
            value = getattr(norm, name, None)
            if isinstance(value, torch.Tensor):
                digest.update(value.detach().cpu().float().contiguous().numpy().tobytes())
        return self._hashed(digest)

    def weights_fingerprint(self) -> str:
        """The fingerprint of earlier versions: the weights and buffers alone (enrolment
        databases made then are recognised by it)."""
        return self._hashed(hashlib.sha1())

    def _hashed(self, digest) -> str:
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``wavs: (batch, samples)`` -> embeddings ``(batch, dim)``.

        ``lengths`` are relative lengths in (0, 1] (SpeechBrain's convention) or integer
        sample counts (what the exports take); either way every row is computed at its exact
        length, so an utterance gets the same embedding alone or in a padded batch.
        """
        if lengths is None:
            samples = None
        elif lengths.is_floating_point():
            samples = (lengths * wavs.shape[1]).round().long()
        else:
            samples = lengths
        unpadded = samples is None or (not torch.jit.is_tracing()
                                       and bool((samples == wavs.shape[1]).all()))
        if unpadded:  # no padding: no masks, the fast path
            embeddings = self.embedding_model(self.compute_features(wavs))
        else:
            embeddings = self.embedding_model(self.compute_features(wavs, samples),
                                              self.compute_features.frame_counts(samples))
        if self.mean_var_norm_emb is not None:
            embeddings = self.mean_var_norm_emb(embeddings, torch.ones(len(wavs),
                                                                       device=wavs.device))
        return embeddings.squeeze(1)


def _numbers_as_floats(value):
    """``25`` and ``25.0`` written in a YAML are one setting: numbers become floats."""
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers_as_floats(v) for v in value]
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else value
