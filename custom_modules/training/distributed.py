"""Several training processes: choosing the backend, checking the replicas agree, unwrapping DDP.

SpeechBrain's default backend is nccl, which needs one GPU per process. Without CUDA the
recipe uses gloo on CPU instead, unless the user asked for nccl by name, which is then an
error rather than a silent switch.
"""

import dataclasses
import logging

import torch
from speechbrain.utils.run_opts import RunOptions
from torch.nn.parallel import DistributedDataParallel

from custom_modules.errors import InputError

logger = logging.getLogger(__name__)


def distributed_defaults(run_opts: RunOptions) -> RunOptions:
    """``run_opts`` with gloo on CPU when there is no CUDA and the backend was not chosen;
    an explicit ``--distributed_backend=nccl`` without CUDA is an ``InputError``."""
    if torch.cuda.is_available() or run_opts.distributed_backend != "nccl":
        return run_opts
    if "distributed_backend" in run_opts.overridden_args:
        raise InputError("--distributed_backend=nccl needs CUDA GPUs, and none is available "
                         "here: use --distributed_backend=gloo to train on CPU processes")
    if "device" in run_opts.overridden_args and not run_opts.device.startswith("cpu"):
        raise InputError(f"--device={run_opts.device}: CUDA is not available here")
    logger.info("no CUDA: several processes train on CPU with the gloo backend")
    # Brain takes a run option from run_opts only when it is listed as given.
    given = {*run_opts.overridden_args, "distributed_backend", "device"}
    return dataclasses.replace(run_opts, distributed_backend="gloo", device="cpu",
                               overridden_args=given)


def replicas_identical(module: torch.nn.Module) -> bool:
    """True when every process holds the same weights (trivially without DDP), and the same
    batch-norm statistics where they are synchronised (``SyncBatchNorm``, on GPUs). On CPU
    (gloo) DDP broadcasts the first process's statistics before each step and every process
    then updates its own, so they differ by the last batch: the first process's are exported.

    Each process gathers a digest (one sum per floating tensor, in float64) from the others.
    The digest stays on the tensors' device: the nccl backend gathers only CUDA tensors, so a
    CPU copy here would stop a multi-GPU run at its very end."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return True
    synchronised = any(isinstance(m, torch.nn.SyncBatchNorm) for m in module.modules())
    tensors = [*module.parameters(), *(module.buffers() if synchronised else ())]
    digest = torch.stack([t.detach().double().sum() for t in tensors if t.is_floating_point()])
    gathered = [torch.empty_like(digest) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(gathered, digest)
    return bool(torch.stack([other == digest for other in gathered]).all())


def summed_over_ranks(values: dict[str, float], device: str | torch.device
                      ) -> dict[str, float]:
    """``values`` summed over every process (``values`` itself without DDP), all-reduced as
    one float64 tensor on ``device`` (the process's own, which nccl requires)."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return dict(values)
    tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return dict(zip(values, tensor.tolist(), strict=True))


def decorrelate_ranks() -> int:
    """Give each process its own random stream; returns the new seed.

    Every process starts from the same seed (the model must start the same), and a DataLoader
    draws its workers' seeds from the main process's generator: without this, worker ``w`` of
    every GPU would draw the same crops' speeds, augmentations, SNRs and noise offsets. Rank 0
    keeps its stream; rank ``r`` adds ``r`` to the seed."""
    seed = torch.initial_seed()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        seed = (seed + torch.distributed.get_rank()) % 2**63
        torch.manual_seed(seed)
    return seed


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (or the module itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module
