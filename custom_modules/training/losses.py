"""Additive angular margin softmax (AAM-softmax, ArcFace) with margin warm-up and sub-centres.

The head keeps one unit weight vector per class (``subcenters`` per class with sub-centre
AAM, scoring a class by its closest sub-centre) and computes
``scale * cos(theta_y + margin)`` for the true class and ``scale * cos(theta_j)`` for the
others, followed by cross-entropy. With one sub-centre its ``weight`` has the shape and
meaning of SpeechBrain's ``ECAPA_TDNN.Classifier`` weight.

The margin grows linearly from 0 to ``margin`` over ``margin_warmup_epochs`` (call ``set_epoch``),
which stabilises the start of training.

The head always computes in float32, as SpeechBrain computes its loss: under CUDA autocast a
half-precision cosine would meet a float32 margin term (``pow`` runs in float32 there), and
``scatter`` refuses to mix them; rounding a cosine near 1 to fp16 would also blur the margin.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from custom_modules.errors import InputError


class AAMSoftmaxHead(nn.Module):
    """Speaker classification head trained with AAM-softmax.

    Arguments
    ---------
    input_size : int
        Embedding size.
    num_classes : int
        Number of training speakers.
    margin, scale : float
        Additive angular margin (radians) and logit scale (paper: 0.2 and 30).
    margin_warmup_epochs : float
        Epochs over which the margin rises linearly from 0 (0: full margin at once).
    subcenters : int
        Sub-centres per class (1: plain AAM-softmax).

    Example
    -------
    >>> head = AAMSoftmaxHead(8, num_classes=3)
    >>> with torch.no_grad():
    ...     _ = head.weight.copy_(torch.eye(3, 8))
    >>> loss, accuracy = head(torch.eye(3, 8)[[0, 1, 2, 0]].unsqueeze(1),
    ...                       torch.tensor([0, 1, 2, 1]))
    >>> float(accuracy)
    0.75
    """

    def __init__(self, input_size: int, num_classes: int, margin: float = 0.2,
                 scale: float = 30.0, margin_warmup_epochs: float = 0.0,
                 subcenters: int = 1):
        super().__init__()
        if num_classes < 2 or subcenters < 1 or not 0 <= margin < math.pi / 2 or scale <= 0:
            raise InputError(f"AAMSoftmaxHead: need num_classes >= 2, subcenters >= 1, "
                             f"0 <= margin < pi/2 and scale > 0; got {num_classes}, "
                             f"{subcenters}, {margin}, {scale}")
        self.num_classes = num_classes
        self.subcenters = subcenters
        self.target_margin = margin
        self.scale = scale
        self.margin_warmup_epochs = margin_warmup_epochs
        self.margin = margin if margin_warmup_epochs <= 0 else 0.0
        self.weight = nn.Parameter(torch.empty(num_classes * subcenters, input_size))
        nn.init.xavier_uniform_(self.weight)

    def set_epoch(self, epoch: float) -> float:
        """Set the margin for (1-based, possibly fractional) ``epoch``; returns it."""
        progress = 1.0 if self.margin_warmup_epochs <= 0 else \
            min(1.0, (epoch - 1) / self.margin_warmup_epochs)
        self.margin = self.target_margin * max(0.0, progress)
        return self.margin

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine of each embedding ``(batch, [1,] dim)`` with each class ``(batch, classes)``
        (the closest sub-centre of each class), in float32 whatever the autocast."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            cosine = F.linear(F.normalize(embeddings.reshape(embeddings.shape[0], -1).float()),
                              F.normalize(self.weight.float()))
        if self.subcenters > 1:
            cosine = cosine.view(-1, self.num_classes, self.subcenters).amax(dim=2)
        return cosine

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``scale * cos(theta_y + margin)`` for each row's class and ``scale * cos(theta_j)``
        for the others: ``(batch, classes)``.

        ``embeddings``: ``(batch, [1,] dim)``; ``labels``: ``(batch,)`` class indices.
        """
        return self._with_margin(self.cosine(embeddings), labels)

    def forward(self, embeddings: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean AAM-softmax loss and classification accuracy (without margin) of a batch.

        ``embeddings``: ``(batch, [1,] dim)``; ``labels``: ``(batch,)`` or ``(batch, 1)``
        class indices.
        """
        labels = labels.reshape(-1)
        cosine = self.cosine(embeddings)
        accuracy = (cosine.argmax(dim=1) == labels).float().mean()
        with torch.autocast(device_type=cosine.device.type, enabled=False):
            loss = F.cross_entropy(self._with_margin(cosine, labels), labels)
        return loss, accuracy

    def _with_margin(self, cosine: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logits from cosines of any floating dtype, computed in float32."""
        cosine = cosine.float().clamp(-1 + 1e-7, 1 - 1e-7)
        target = cosine.gather(1, labels.unsqueeze(1))
        # cos(theta + m); past theta = pi - m the function would turn back up, so there use
        # the linear continuation cos(theta) - m sin(m) (the usual "easy margin" guard).
        with_margin = torch.where(
            target > math.cos(math.pi - self.margin),
            target * math.cos(self.margin) - (1 - target.pow(2)).sqrt() * math.sin(self.margin),
            target - self.margin * math.sin(self.margin))
        return self.scale * cosine.scatter(1, labels.unsqueeze(1), with_margin)
