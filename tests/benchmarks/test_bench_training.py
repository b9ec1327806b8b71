"""The harness's training loop against a bare PyTorch loop: same model, same batches (a figure, not a gate).

Run: pytest tests/benchmarks/test_bench_training.py -m slow --benchmark-enable
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from mubench.train.backbones import build_backbone
from mubench.data.splits import BatchLoader
from mubench.datasets.digits import Digits
from mubench.core.losses import TaskKind, task_loss
from mubench.train.training import fit, make_optimizer

pytestmark = pytest.mark.slow
BATCHES, BATCH_SIZE = 8, 64
results = {}


@pytest.fixture(scope="module")
def setup():
    splits = Digits().load()
    retain = splits.retain.subset(torch.arange(BATCHES * BATCH_SIZE))
    model = build_backbone("resnet18", 10)
    return splits, retain, model


def harness_epoch(splits, retain, model):
    loader = BatchLoader(retain, splits.preprocess, BATCH_SIZE, shuffle=True, seed=0)
    optimizer = make_optimizer(model.parameters(), "sgd", 0.01)
    fit(model, lambda epoch: loader, lambda m, b: task_loss(m(b[0]), b[1], TaskKind.MULTICLASS), optimizer, 1)


def bare_epoch(splits, retain, model):
    """What a researcher writes by hand: the same batches, already as float tensors."""
    order = torch.randperm(len(retain), generator=torch.Generator().manual_seed(0))
    x_all = splits.preprocess.to_input(retain.images)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    for b in range(BATCHES):
        index = order[b * BATCH_SIZE:(b + 1) * BATCH_SIZE]
        loss = F.cross_entropy(model(x_all[index]), retain.labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("loop", ["bare", "harness"])
def test_training_loop_throughput(benchmark, setup, loop):
    splits, retain, model = setup
    step = {"bare": bare_epoch, "harness": harness_epoch}[loop]
    benchmark.pedantic(lambda: step(splits, retain, copy.deepcopy(model)), rounds=5, warmup_rounds=1)
    results[loop] = benchmark.stats.stats.median
    if len(results) == 2:
        ratio = results["bare"] / results["harness"]
        print(f"\nharness/bare throughput ratio: {ratio:.3f} (samples/s of the harness over the bare loop)")
        benchmark.extra_info["throughput_ratio"] = ratio
