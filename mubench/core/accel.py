"""The GPU fast path: task images kept on the device, bf16 autocast in the training loop and in evaluation,
channels-last convolutions.

It is on for tensors on a CUDA device and off on the CPU, so `--device cuda` turns it on and a CPU run computes
exactly what plain float32 PyTorch computes. `fast_path(True)` or `fast_path(False)` overrides that choice inside
a block (the tests compare both paths on the CPU; the GPU benchmark times both).

Where it applies: `BatchLoader` copies a split's uint8 images to the device once, normalises and augments them
there with draws from the same CPU generator (the same images, flips, crops and warps as on the CPU), and hands
out channels-last batches; `training.fit` (the references and every loop-based method) makes the model's conv
weights channels-last and runs each step's forward passes and loss under bf16 autocast, the backward pass and the
update in float32; `metrics.evaluate` runs its forward passes under autocast. A method's own passes outside `fit`
(SSD's Fisher importances, SalUn's saliency, DLFD's steps, UNSIR's noise) stay float32: on the toy cell, bf16
moved SSD's per-weight importances by 10-25 % and with them which weights it dampens, a change beyond rounding,
while references and fine-tuned models trained under autocast scored within one test image of float32.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import ContextManager, Iterator

import torch
from torch import nn

FAST_DTYPE = torch.bfloat16  # needs no loss scaling, unlike float16
_override: ContextVar[bool | None] = ContextVar("mubench_fast_path", default=None)


def fast_on(device: torch.device | str) -> bool:
    """Whether the fast path applies to tensors on `device`: on CUDA, unless a `fast_path` block says otherwise."""
    forced = _override.get()
    return torch.device(device).type == "cuda" if forced is None else forced


@contextlib.contextmanager
def fast_path(enabled: bool | None) -> Iterator[None]:
    """Turn the fast path on (True) or off (False) on every device inside the block; None: by device."""
    token = _override.set(enabled)
    try:
        yield
    finally:
        _override.reset(token)


def autocast(device: torch.device | str) -> ContextManager:
    """bf16 autocast for a forward pass on `device` where the fast path is on; otherwise nothing at all."""
    device = torch.device(device)
    if not fast_on(device):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=FAST_DTYPE)


def device_of(model: nn.Module) -> torch.device:
    """Where `model`'s parameters are (the CPU for a model without any)."""
    return next(model.parameters(), torch.empty(0)).device


def prepare_model(model: nn.Module, device: torch.device | str) -> nn.Module:
    """`model` with channels-last conv weights where the fast path is on for `device` (in place; returned)."""
    if fast_on(device):
        model.to(memory_format=torch.channels_last)
    return model


def prepare_input(x: torch.Tensor) -> torch.Tensor:
    """An image batch [N, C, H, W] in channels-last layout where the fast path is on for its device."""
    if x.dim() == 4 and fast_on(x.device):
        return x.contiguous(memory_format=torch.channels_last)
    return x
