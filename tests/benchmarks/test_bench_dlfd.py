"""DLFD cost: one step (K perturbation steps + one update), the OT term alone, one ctx.monitor() call.

Run: .venv/bin/pytest tests/benchmarks/test_bench_dlfd.py -m slow --benchmark-enable
test_step records in extra_info the share of its time spent inside ot_distance (timed in the same calls, so the
share holds up on a busy machine better than a ratio of two benchmarks).
"""
import time

import pytest
import torch

import mubench.methods.dlfd as dlfd_module

from mubench.train.backbones import build_backbone
from mubench.unlearn.protocol import make_monitor
from mubench.core.losses import TaskKind
from mubench.data.tasks import load_task
from mubench.methods.dlfd import DLFD, ot_distance
from mubench.train.training import make_optimizer

pytestmark = pytest.mark.slow
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SIZES = (32, 64, 128)
OTS = ("exact", "sinkhorn")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


@pytest.fixture(scope="module")
def digits():
    return load_task("digits", "default", None)[1]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_backbone("resnet18", 10).to(DEVICE)


def batches(digits, n):
    """A retain and a forget batch of n digits at 32×32, already normalised."""
    def take(split):
        return (digits.preprocess.to_input(split.images[:n]).to(DEVICE), split.labels[:n].to(DEVICE))
    return take(digits.retain), take(digits.forget)


@pytest.mark.parametrize("ot_kind", OTS)
@pytest.mark.parametrize("n", SIZES)
def test_step(benchmark, digits, model, n, ot_kind, monkeypatch):
    dlfd = DLFD(DLFD.Config(ot=ot_kind))  # the default K
    (x_r, y_r), (x_f, _) = batches(digits, n)
    optimizer = make_optimizer(model.parameters(), "sgd", 1e-3)
    spent = {"ot": 0.0, "step": 0.0}

    def timed_ot(*args, **kwargs):  # forward of the OT term; its backward is timed with the rest of the step
        sync()
        started = time.perf_counter()
        out = ot_distance(*args, **kwargs)
        sync()
        spent["ot"] += time.perf_counter() - started
        return out
    monkeypatch.setattr(dlfd_module, "ot_distance", timed_ot)

    def step():
        started = time.perf_counter()
        x = dlfd.perturb(model, x_r, y_r, x_f, 0.5, TaskKind.MULTICLASS, digits.preprocess)
        dlfd.update(model, optimizer, x, y_r, TaskKind.MULTICLASS)
        sync()
        spent["step"] += time.perf_counter() - started
    benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    benchmark.extra_info.update(steps=dlfd.config.steps, device=DEVICE.type,
                                ot_forward_share=round(spent["ot"] / spent["step"], 4))


@pytest.mark.parametrize("ot_kind", OTS)
@pytest.mark.parametrize("n", SIZES)
def test_ot_term(benchmark, n, ot_kind):
    """One OT distance and its gradient to the [n, 512] penultimate features (what each of the K steps adds)."""
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(n, 512, generator=g).relu().to(DEVICE).requires_grad_()
    target = torch.randn(n, 512, generator=g).relu().to(DEVICE)

    def term():
        torch.autograd.grad(ot_distance(feats, target, ot_kind), feats)
        sync()
    benchmark.pedantic(term, rounds=10, warmup_rounds=2)


def test_monitor(benchmark, digits, model):
    """One ctx.monitor(): losses on forget and val, the paper's MIA (10-fold CV, twice) and val accuracy."""
    monitor = make_monitor(digits.forget, digits.val, digits.kind, digits.preprocess, DEVICE)
    benchmark.extra_info.update(forget=len(digits.forget), val=len(digits.val))
    benchmark.pedantic(lambda: monitor(model), rounds=5, warmup_rounds=1)
