"""L2-SP (``training.anchor``): the distance a fine-tuning adds to its loss, checked against a
hand computation, and what it does to an optimiser's steps."""

import torch

from custom_modules.training.anchor import StartingPoint
from custom_modules.training.init_from import frozen_modules


def test_the_distance_counts_the_learning_weights_only():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    start = StartingPoint(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))
    frozen_modules(model, ["0"])                    # the first layer no longer learns
    by_hand = sum(float((p - before[n]).pow(2).sum()) for n, p in model.named_parameters()
                  if n.startswith("1."))
    distance = start.distance(model)
    assert abs(float(distance) - by_hand) < 1e-5
    distance.backward()                             # d/dθ ||θ - θ0||² = 2 (θ - θ0)
    assert torch.allclose(model[1].weight.grad, 2 * (model[1].weight - before["1.weight"]))
    assert model[0].weight.grad is None


def test_an_anchored_optimiser_stays_nearer_its_start():
    ends = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(1)
        model = torch.nn.Linear(8, 4)
        start = StartingPoint(model)
        optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(50):                         # a pull towards other weights
            loss = (model(torch.randn(16, 8)) - 3.0).pow(2).mean()
            loss = loss + weight * start.distance(model)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        ends[weight] = float(start.distance(model))
    assert ends[1.0] < ends[0.0] / 4
