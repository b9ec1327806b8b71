"""One cell: unlearn a copy of the Original, time it, score it, and log it as a child run of the invocation."""
from __future__ import annotations

import copy
import logging
import math
import time
import traceback

import mlflow
import numpy as np
import torch
from torch import nn

from mubench import metrics
from mubench.api import METHODS, MonitorReading, UnlearnContext, UnlearnData
from mubench.config import param_text, stable_hash
from mubench.data import Split, Splits
from mubench.errors import MubenchError
from mubench.identity import config_hash, pretrained_digest
from mubench.plan import CellFailure, MethodSpec, RunPlan, RunSummary
from mubench.progress import cell_done
from mubench.references import References, seed_everything
from mubench.tracking import TAG, process_tags, provenance_tags
from mubench.training import Recipe

log = logging.getLogger(__name__)


def make_monitor(forget: Split, val: Split, kind, preprocess, device: torch.device,
                 forgotten_classes: tuple[int, ...] = ()):
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


def run_cell(plan: RunPlan, spec: MethodSpec, splits: Splits, recipe: Recipe, backbone: str, seed: int,
             refs: References, plots=None, attack=None) -> dict[str, float]:
    """Unlearn one copy of the original, time it, score it. Raises on any failure of the method. `attack`, when
    given (the executor's, e.g. LiRA with its shadows), maps the unlearned model and the cell's spec to more scores;
    the method never sees it."""
    cls = METHODS.get(spec.name)
    if splits.kind.value == "multilabel" and not cls.supports_multilabel:
        raise MubenchError(f"method {spec.name!r} is defined for single-label classification only; "
                           f"task {splits.task!r} is multi-label.")
    unlearner = cls(spec.config_for(splits.task))
    data = UnlearnData(splits.retain, splits.forget, splits.val, splits.kind, splits.num_outputs,
                       splits.preprocess, recipe.batch_size, plan.device)
    logged: list[mlflow.entities.Metric] = []
    ctx = UnlearnContext(
        device=plan.device, seed=seed, quiet=plan.quiet,
        _monitor=make_monitor(splits.forget, splits.val, splits.kind, splits.preprocess, plan.device,
                              splits.forgotten_classes),
        _retrained=lambda: (copy.deepcopy(refs.retrained), refs.retrain_record["train_seconds"]),
        _log_metric=lambda k, v, step: logged.append(mlflow.entities.Metric(k, v, int(time.time() * 1000), step)))
    model = copy.deepcopy(refs.original)
    seed_everything(seed)
    started = time.perf_counter()
    result = unlearner.unlearn(model, data, ctx)
    if plan.device.type == "cuda":
        torch.cuda.synchronize(plan.device)
    seconds = time.perf_counter() - started + ctx.borrowed_seconds
    if not isinstance(result, nn.Module):
        raise MubenchError(f"method {spec.name!r} returned a {type(result).__name__} from unlearn(); "
                           f"it must return a torch.nn.Module.")
    result.eval()
    refuse_non_finite(spec.name, result, logged)
    losses = {}
    scores = metrics.score_model(result, splits, plan.device, losses)
    bad = [k for k, v in scores.items() if not math.isfinite(v)]
    if bad:
        raise MubenchError(f"method {spec.name!r} produced non-finite {', '.join(bad)}.")
    if attack is not None:
        scores.update(attack(result, spec))
    retrain_seconds = refs.retrain_record["train_seconds"]
    scores.update(unlearn_seconds=seconds, retrain_seconds=retrain_seconds,
                  time_ratio=metrics.time_ratio(seconds, retrain_seconds))
    run_id = mlflow.active_run().info.run_id
    for start in range(0, len(logged), 1000):  # MLflow accepts at most 1000 metrics per batch
        mlflow.MlflowClient().log_batch(run_id, metrics=logged[start:start + 1000])
    if plots is not None:
        plots.cell(spec.row, result, losses)
    return scores


def refuse_non_finite(name: str, model: nn.Module, logged: list) -> None:
    """NaN or inf weights (buffers included) or logged losses fail the cell before anything is scored."""
    weights = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if weights:
        more = f" and {len(weights) - 3} more" if len(weights) > 3 else ""
        raise MubenchError(f"method {name!r} returned a model with non-finite weights in "
                           f"{', '.join(weights[:3])}{more}.")
    values = sorted({m.key for m in logged if not math.isfinite(m.value)})
    if values:
        raise MubenchError(f"method {name!r} logged non-finite values of {', '.join(values)}.")


def cell_tags(plan, spec, key, splits, recipe, backbone, seed, original_key, threads) -> dict[str, str]:
    """The tags a board groups and filters cells by: one board per task × backbone × preset × head × pretrained
    weights × torch threads, one row per label (method and resolved configuration)."""
    return {f"{TAG}kind": "cell", f"{TAG}cell_key": key, f"{TAG}method": spec.name, f"{TAG}label": spec.row,
            f"{TAG}base": spec.base, f"{TAG}variant": spec.variant,
            f"{TAG}task": splits.task, f"{TAG}scenario": splits.scenario, f"{TAG}backbone": backbone, f"{TAG}head": plan.head, f"{TAG}seed": str(seed),
            f"{TAG}preset": plan.preset, f"{TAG}split_hash": splits.split_hash,
            f"{TAG}pretrained": (pretrained_digest(plan.pretrained) or "none")[:12], f"{TAG}threads": str(threads),
            f"{TAG}device": plan.device.type, f"{TAG}config_hash": config_hash(spec, splits.task),
            f"{TAG}recipe_hash": stable_hash(param_text(recipe)), f"{TAG}command": plan.command,
            f"{TAG}original_cache": original_key, **provenance_tags(), **process_tags()}


def cell_run_name(spec, splits, backbone, seed) -> str:
    scenario = "" if splits.scenario == "random" else f"[{splits.scenario}]"
    return f"{spec.row}/{splits.task}{scenario}/{backbone}/s{seed}"


def run_logged_cell(plan, spec, key, splits, recipe, backbone, seed, refs, summary: RunSummary,
                    seed_plots=None, attack=None) -> None:
    """One cell as a child run: FINISHED with its scores, or FAILED with its error (the grid goes on)."""
    config = spec.config_for(splits.task)
    threads = torch.get_num_threads()
    tags = cell_tags(plan, spec, key, splits, recipe, backbone, seed, refs.original_record["key"], threads)
    params = {**{f"cfg.{k}": v for k, v in param_text(config).items()},
              **{f"recipe.{k}": v for k, v in param_text(recipe).items()},
              "task": splits.task, "scenario": splits.scenario, "backbone": backbone, "seed": seed,
              "split_hash": splits.split_hash,
              "preset": plan.preset, "device": plan.device.type, "threads": threads,
              **{f"task.{k}": v for k, v in splits.notes.get("task_options", {}).items()}}
    summary.cells += 1
    # Named parent: in a worker of another process the parent run is not the active one.
    with mlflow.start_run(run_name=cell_run_name(spec, splits, backbone, seed), nested=True,
                          parent_run_id=summary.parent_run_id, tags=tags) as run:
        mlflow.log_params(params)
        try:
            scores = run_cell(plan, spec, splits, recipe, backbone, seed, refs, seed_plots, attack)
        except Exception as exc:  # one broken method must not cost the rest of the grid
            message = str(exc) if isinstance(exc, MubenchError) else f"{type(exc).__name__}: {exc}"
            log.debug("cell %s failed:\n%s", run.info.run_name, traceback.format_exc())
            mlflow.set_tag(f"{TAG}error", message[:5000])
            mlflow.end_run(status="FAILED")
            summary.failures.append(CellFailure(spec.row, splits.task, backbone, seed, message))
            cell_done(spec.row, splits, backbone, seed, error=message, quiet=plan.quiet)
            return
        mlflow.log_metrics(scores)
    cell_done(spec.row, splits, backbone, seed, scores, quiet=plan.quiet)
