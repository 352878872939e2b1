"""Collectives of the training recipe: on the process's own device, as nccl demands."""

import pytest
import torch

from custom_modules.training.distributed import (
    decorrelate_ranks,
    replicas_identical,
    summed_over_ranks,
)


class Collected(Exception):
    """The collective was called with tensors on the right device (as far as we go on meta)."""


class FakeGroup:
    """Stands in for ``torch.distributed`` with two processes. Like nccl it refuses tensors on
    another device than the process's; ``others`` are the other process's digests."""

    def __init__(self, device: str, others: torch.Tensor | None = None):
        self.device, self.others = torch.device(device), others

    def install(self, monkeypatch) -> None:
        for name in ("is_available", "is_initialized"):
            monkeypatch.setattr(torch.distributed, name, lambda: True)
        monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
        monkeypatch.setattr(torch.distributed, "all_gather", self.all_gather)
        monkeypatch.setattr(torch.distributed, "all_reduce", self.all_reduce)

    def all_reduce(self, tensor: torch.Tensor) -> None:
        if tensor.device != self.device:
            raise RuntimeError(f"nccl: tensors must be on {self.device}, got {tensor.device}")
        if self.others is None:
            raise Collected
        tensor += self.others

    def all_gather(self, outputs: list[torch.Tensor], tensor: torch.Tensor) -> None:
        devices = {t.device for t in (*outputs, tensor)}
        if devices != {self.device}:
            raise RuntimeError(f"nccl: tensors must be on {self.device}, got {devices}")
        if self.others is None:
            raise Collected
        outputs[0].copy_(tensor)
        outputs[1].copy_(self.others)


def test_the_replica_check_gathers_on_the_models_own_device(monkeypatch):
    # A model on another device than the CPU (meta stands in for a GPU here): the digest
    # must be gathered there, not copied to the CPU first.
    FakeGroup("meta").install(monkeypatch)
    with pytest.raises(Collected):
        replicas_identical(torch.nn.Linear(3, 2, device="meta"))


def test_the_replica_check_compares_every_process(monkeypatch):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    digest = torch.stack([p.detach().double().sum() for p in model.parameters()])
    FakeGroup("cpu", others=digest.clone()).install(monkeypatch)
    assert replicas_identical(model) is True
    FakeGroup("cpu", others=digest + torch.tensor([0.0, 1e-9], dtype=torch.float64)
              ).install(monkeypatch)
    assert replicas_identical(model) is False


def test_each_process_gets_its_own_random_stream(monkeypatch):
    torch.manual_seed(1234)
    assert decorrelate_ranks() == 1234                 # one process: unchanged
    draws = {}
    for rank in (0, 1, 2):
        torch.manual_seed(1234)
        FakeGroup("cpu").install(monkeypatch)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda rank=rank: rank)
        assert decorrelate_ranks() == 1234 + rank
        draws[rank] = torch.randint(0, 2**31, (4,)).tolist()
    assert len({tuple(d) for d in draws.values()}) == 3  # the DataLoader seeds differ too


def test_epoch_figures_are_summed_over_the_processes_on_their_device(monkeypatch):
    totals = {"steps": 10, "data_wait": 1.5, "compute": 8.25}
    assert summed_over_ranks(totals, "cpu") == totals            # one process
    FakeGroup("meta").install(monkeypatch)
    with pytest.raises(Collected):
        summed_over_ranks(totals, "meta")
    FakeGroup("cpu", others=torch.tensor([12.0, 0.5, 9.0], dtype=torch.float64)
              ).install(monkeypatch)
    assert summed_over_ranks(totals, "cpu") == {"steps": 22, "data_wait": 2.0,
                                                 "compute": 17.25}


def test_batch_norm_statistics_are_compared_only_where_they_are_synchronised(monkeypatch):
    torch.manual_seed(0)
    for norm, synchronised in ((torch.nn.SyncBatchNorm(2), True),
                               (torch.nn.BatchNorm1d(2), False)):
        model = torch.nn.Sequential(torch.nn.Linear(3, 2), norm)
        model[1].running_var.fill_(2.0)
        weights = [p.detach().double().sum() for p in model.parameters()]
        statistics = [model[1].running_mean.double().sum(), model[1].running_var.double().sum()]
        digest = torch.stack(weights + (statistics if synchronised else []))
        FakeGroup("cpu", others=digest.clone()).install(monkeypatch)
        assert replicas_identical(model) is True
        if synchronised:        # another process's running variance differs
            other = digest.clone()
            other[-1] += 1.0
            FakeGroup("cpu", others=other).install(monkeypatch)
            assert replicas_identical(model) is False
