"""Fine-tuning that keeps what the started-from model knew: L2-SP (Li, Grandvalet and Davoine,
"Explicit inductive bias for transfer learning with convolutional networks", ICML 2018).

With ``anchor_weight`` above 0 (and ``init_from``), the training loss adds ``anchor_weight``
times the squared distance of the embedding model's learning weights from the weights it
started from, instead of letting them drift wherever a few new speakers pull them. Measured on
real speech (docs/BENCHMARKS.md, "Fine-tuning the VoxCeleb model on real speakers"): without
it, ten minutes on twelve game characters took the VoxCeleb model's EER on council meetings
from 1.84 to 3.28 %.

The starting point is a module of buffers that the checkpointer saves with the run, so that a
resumed run (which does not read ``init_from`` again) keeps its anchor.

>>> model = torch.nn.Linear(2, 1)
>>> start = StartingPoint(model)
>>> with torch.no_grad():
...     _ = model.weight.add_(1.0)
>>> float(start.distance(model).detach())
2.0
"""

import torch


class StartingPoint(torch.nn.Module):
    """The parameters of ``model`` when the fine-tuning starts, as buffers (``.`` in a name
    becomes ``__``)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        for name, parameter in model.named_parameters():
            self.register_buffer(_buffer_name(name), parameter.detach().clone())

    def distance(self, model: torch.nn.Module) -> torch.Tensor:
        """The squared distance ``()`` of the parameters of ``model`` that learn (frozen ones
        are left out) from the starting point, in float32."""
        terms = [(parameter.float() - getattr(self, _buffer_name(name)).float()).pow(2).sum()
                 for name, parameter in model.named_parameters() if parameter.requires_grad]
        if not terms:
            return torch.zeros((), device=next(self.buffers()).device)
        return torch.stack(terms).sum()


def _buffer_name(parameter: str) -> str:
    return parameter.replace(".", "__")
