"""The unlearning protocol: what a method receives and what the harness checks of what it returns, written once for
every caller (a cell, a tuning trial, a U-LiRA shadow, the conformance kit)."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable

import mlflow
import numpy as np
import torch
from torch import nn

from mubench.scores import metrics
from mubench.unlearn.api import MonitorReading, UnlearnContext, UnlearnData, Unlearner
from mubench.data.splits import Split, Splits
from mubench.core.errors import MubenchError
from mubench.core.seeds import seed_everything


def make_monitor(forget: Split, val: Split, kind, preprocess, device: torch.device,
                 forgotten_classes: tuple[int, ...] = ()) -> Callable[[nn.Module], MonitorReading]:
    """ctx.monitor(): the paper's MIA on forget (members) vs val (non-members), and val accuracy; under class-wise
    forgetting, val's images of the forgotten classes are the non-members and accuracy is on the other classes
    (as the final scores do with test).

    Closes over forget and val only, so `test` stays out of a method's reach.
    """
    forgotten = metrics.in_classes(val, forgotten_classes) if forgotten_classes else np.zeros(len(val), bool)

    def monitor(model: nn.Module) -> MonitorReading:
        forget_losses, _ = metrics.losses_and_accuracy(model, forget, kind, preprocess, device)
        val_losses, val_right = metrics.evaluate(model, val, kind, preprocess, device)
        non_members = val_losses[forgotten] if forgotten_classes else val_losses
        attack = metrics.mia_scores(forget_losses, non_members)
        val_accuracy = metrics.mean_or_nan(val_right[~forgotten])
        return MonitorReading(metrics.forgetting_score(attack.mia), attack.mia, val_accuracy)
    return monitor


def unlearn_data(splits: Splits, batch_size: int, device: torch.device, forget: Split | None = None) -> UnlearnData:
    """What a method may read of a task: retain, forget (the task's, or `forget` where a shadow forgets its own
    half of the attack pool) and val; never test."""
    return UnlearnData(splits.retain, splits.forget if forget is None else forget, splits.val, splits.kind,
                       splits.num_outputs, splits.preprocess, batch_size, device)


def split_monitor(splits: Splits, data: UnlearnData) -> Callable[[nn.Module], MonitorReading]:
    """The monitor of `data`'s forget set against the task's val, minding the task's forgotten classes."""
    return make_monitor(data.forget, splits.val, splits.kind, splits.preprocess, data.device,
                        splits.forgotten_classes)


def method_name(unlearner: Unlearner) -> str:
    return type(unlearner).registered_name or type(unlearner).__name__


def refuse_multilabel(unlearner: Unlearner, splits: Splits) -> None:
    if splits.kind.value == "multilabel" and not type(unlearner).supports_multilabel:
        raise MubenchError(f"method {method_name(unlearner)!r} is defined for single-label classification only; "
                           f"task {splits.task!r} is multi-label.")


@dataclass
class Unlearned:
    model: nn.Module  # the method's result, in eval mode, with finite weights
    seconds: float  # wall time of unlearn(), plus the training time of the references it borrowed
    logged: list  # mlflow Metric records of what the method logged through ctx.log_metric


def unlearn_once(unlearner: Unlearner, original: nn.Module, data: UnlearnData, *, seed: int,
                 monitor: Callable[[nn.Module], MonitorReading], retrained: Callable[[], tuple[nn.Module, float]],
                 quiet: bool = True) -> Unlearned:
    """Unlearn a private copy of `original`, seeded and timed; refuse a result that is not a finite model."""
    name = method_name(unlearner)
    logged: list[mlflow.entities.Metric] = []
    ctx = UnlearnContext(
        device=data.device, seed=seed, quiet=quiet, _monitor=monitor, _retrained=retrained,
        _log_metric=lambda k, v, step: logged.append(mlflow.entities.Metric(k, v, int(time.time() * 1000), step)))
    model = copy.deepcopy(original)
    seed_everything(seed)
    started = time.perf_counter()
    result = unlearner.unlearn(model, data, ctx)
    if data.device.type == "cuda":
        torch.cuda.synchronize(data.device)
    seconds = time.perf_counter() - started + ctx.borrowed_seconds
    if not isinstance(result, nn.Module):
        raise MubenchError(f"method {name!r} returned a {type(result).__name__} from unlearn(); "
                           f"it must return a torch.nn.Module.")
    result.eval()
    refuse_non_finite(name, result, logged)
    return Unlearned(result, seconds, logged)


def refuse_non_finite(name: str, model: nn.Module, logged: list) -> None:
    """NaN or inf weights (buffers included) or logged losses fail the cell before anything is scored."""
    weights = [k for k, v in model.state_dict().items() if not isinstance(v, nn.parameter.UninitializedParameter)
               and v.is_floating_point() and not torch.isfinite(v).all()]  # a lazy layer holds no values yet
    if weights:
        more = f" and {len(weights) - 3} more" if len(weights) > 3 else ""
        raise MubenchError(f"method {name!r} returned a model with non-finite weights in "
                           f"{', '.join(weights[:3])}{more}.")
    values = sorted({m.key for m in logged if not math.isfinite(m.value)})
    if values:
        raise MubenchError(f"method {name!r} logged non-finite values of {', '.join(values)}.")


def log_to_active_run(logged: list) -> None:
    """A method's logged curves onto the active MLflow run (at most 1000 metrics per batch, MLflow's limit)."""
    run_id = mlflow.active_run().info.run_id
    for start in range(0, len(logged), 1000):
        mlflow.MlflowClient().log_batch(run_id, metrics=logged[start:start + 1000])
