"""One cell: unlearn a copy of the Original, time it, score it, and log it as a child run of the invocation."""
from __future__ import annotations

import contextlib
import copy
import fcntl
import logging
import math
import traceback

import mlflow
import torch

from mubench.attacks.base import ATTACKS, AttackedCell, SeedContext, always_scored, scores_or_reason
from mubench.attacks.population import ROLE_LOSSES
from mubench.scores import metrics
from mubench.unlearn.api import METHODS
from mubench.core.config import param_text, stable_hash
from mubench.core.errors import MubenchError
from mubench.core.faults import is_disk_full
from mubench.harness.keys import config_hash, pretrained_digest
from mubench.harness.plan import CellFailure, CellJob, MethodSpec, RunSummary, SeedSetup
from mubench.core.progress import cell_done
from mubench.unlearn.protocol import log_to_active_run, refuse_multilabel, split_monitor, unlearn_data, unlearn_once
from mubench.harness.references import References
from mubench.core.tracking import process_tags, provenance_tags
from mubench.core.store import EXPERIMENT, TAG

log = logging.getLogger(__name__)


def run_cell(setup: SeedSetup, refs: References, spec: MethodSpec, config, plots=None,
             attack=None) -> dict[str, float]:
    """Unlearn one copy of the original with the method of `spec` and its resolved `config`, time it, score it.
    Raises on any failure of the method. `attack`, when given (the executor's, e.g. LiRA with its shadows), maps the
    unlearned model, the cell's spec and config to more scores; the method never sees it."""
    plan, splits, seed = setup.plan, setup.splits, setup.seed
    unlearner = METHODS.get(spec.name)(config)
    refuse_multilabel(unlearner, splits)
    data = unlearn_data(splits, setup.recipe.batch_size, plan.device)
    done = unlearn_once(unlearner, refs.original, data, seed=seed, monitor=split_monitor(splits, data),
                        retrained=lambda: (copy.deepcopy(refs.retrained), refs.retrain_record["train_seconds"]),
                        quiet=plan.quiet)
    result, seconds = done.model, done.seconds
    losses, unavailable = {}, {}
    scores = cell_scores(setup, result, spec, config, refs.retrain_record["train_seconds"], losses, unavailable)
    record_unavailable(unavailable)
    bad = [k for k, v in scores.items() if not math.isfinite(v)]
    if bad:
        raise MubenchError(f"method {spec.name!r} produced non-finite {', '.join(bad)}.")
    if attack is not None:
        scores.update(attack(result, spec, config))
    retrain_seconds = refs.retrain_record["train_seconds"]
    scores.update(unlearn_seconds=seconds, retrain_seconds=retrain_seconds,
                  time_ratio=metrics.time_ratio(seconds, retrain_seconds))
    log_to_active_run(done.logged)
    if plots is not None:
        plots.cell(spec.row, result, losses)
    return scores


def cell_scores(setup: SeedSetup, model, spec: MethodSpec, config, retrain_seconds: float,
                losses: dict | None = None, unavailable: dict | None = None) -> dict[str, float]:
    """Accuracy and mean loss per role, the attacks that score every cell (the paper's MIA and the scale-free ones,
    reading the losses computed for accuracy; under class-wise forgetting MIA-efficacy as well), and NoMUS from the paper's FS. `losses` is filled as in
    metrics.score_model; `unavailable` with the reason of each attack the cell's sizes leave undefined (then
    without its metrics, and without NoMUS when the paper's FS is among them)."""
    losses = {} if losses is None else losses
    unavailable = {} if unavailable is None else unavailable
    scores = metrics.score_model(model, setup.splits, setup.plan.device, losses)
    scored = AttackedCell(model, spec, config)
    scored.memo(ROLE_LOSSES, lambda: losses)
    context = SeedContext(*setup, None, retrain_seconds)
    for name in always_scored(setup.splits):
        scores.update(scores_or_reason(ATTACKS.get(name)(context), scored, unavailable))
    if "fs" in scores:
        scores["nomus"] = metrics.nomus(scores["test_acc"], scores["fs"])
    return scores


def record_unavailable(unavailable: dict[str, str]) -> None:
    """Tag the active cell run with why each unavailable attack is: the board shows n/a and says why."""
    if unavailable:
        mlflow.set_tags({f"{TAG}unavailable.{name}": reason[:5000] for name, reason in unavailable.items()})


def cell_tags(setup: SeedSetup, job: CellJob, original_key: str, threads: int) -> dict[str, str]:
    """The tags a board groups and filters cells by: one board per task × backbone × preset × head × pretrained
    weights × torch threads, one row per label (method and resolved configuration)."""
    plan, splits, spec = setup.plan, setup.splits, job.spec
    return {f"{TAG}kind": "cell", f"{TAG}cell_key": job.key, f"{TAG}method": spec.name, f"{TAG}label": spec.row,
            f"{TAG}base": spec.base, f"{TAG}variant": spec.variant,
            f"{TAG}task": splits.task, f"{TAG}scenario": splits.scenario, f"{TAG}backbone": setup.backbone,
            f"{TAG}head": plan.head, f"{TAG}seed": str(setup.seed),
            f"{TAG}preset": plan.preset, f"{TAG}split_hash": splits.split_hash,
            f"{TAG}pretrained": (pretrained_digest(plan.pretrained) or "none")[:12], f"{TAG}threads": str(threads),
            f"{TAG}device": plan.device.type, f"{TAG}config_hash": config_hash(job.config),
            f"{TAG}recipe_hash": stable_hash(param_text(setup.recipe)), f"{TAG}command": plan.command,
            f"{TAG}original_cache": original_key, f"{TAG}attacks": ",".join(plan.attacks),
            **provenance_tags(), **process_tags()}


def cell_run_name(spec, splits, backbone, seed) -> str:
    scenario = "" if splits.scenario == "random" else f"[{splits.scenario}]"
    return f"{spec.row}/{splits.task}{scenario}/{backbone}/s{seed}"


CLAIMS = "claims"  # folder of --out with one lock file per cell key


@contextlib.contextmanager
def cell_claim(plan, key: str, wait: bool = True):
    """Hold the claim on cell `key` while it runs (yields True), so that another process on the same --out asking for
    it waits, then finds it finished instead of computing it again; without `wait`, yields False at once when another
    process holds it. The lock is the kernel's, so a killed process releases it."""
    folder = plan.out / CLAIMS
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{key}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def finished_elsewhere(plan, key: str) -> bool:
    client = mlflow.MlflowClient(plan.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return bool(client.search_runs([experiment.experiment_id], max_results=1, filter_string=(
        f"tags.`{TAG}cell_key` = '{key}' and attributes.status = 'FINISHED'")))


def run_logged_cell(setup: SeedSetup, refs: References, job: CellJob, summary: RunSummary, seed_plots=None,
                    attack=None, wait: bool = True) -> bool:
    """One cell as a child run, computed once however many runs share the store: FINISHED with its scores, or FAILED
    with its error (the grid goes on). False, without `wait`, when another process is computing it now."""
    with cell_claim(setup.plan, job.key, wait) as claimed:
        if not claimed:
            return False
        if not setup.plan.force and finished_elsewhere(setup.plan, job.key):
            summary.skipped += 1
            return True
        _run_logged_cell(setup, refs, job, summary, seed_plots, attack)
        return True


def _run_logged_cell(setup: SeedSetup, refs: References, job: CellJob, summary: RunSummary, seed_plots=None,
                     attack=None) -> None:
    plan, splits, recipe, backbone, seed = setup.plan, setup.splits, setup.recipe, setup.backbone, setup.seed
    spec = job.spec
    threads = torch.get_num_threads()
    tags = cell_tags(setup, job, refs.original_record["key"], threads)
    params = {**{f"cfg.{k}": v for k, v in param_text(job.config).items()},
              **{f"recipe.{k}": v for k, v in param_text(recipe).items()},
              "task": splits.task, "scenario": splits.scenario, "backbone": backbone, "seed": seed,
              "split_hash": splits.split_hash,
              "preset": plan.preset, "device": plan.device.type, "threads": threads,
              **{f"task.{k}": v for k, v in splits.notes.get("task_options", {}).items()}}
    summary.cells += 1
    # Named parent: in a worker of another process the parent run is not the active one.
    with mlflow.start_run(run_name=cell_run_name(spec, splits, backbone, seed), nested=True,
                          parent_run_id=summary.parent_run_id, tags=tags) as run:
        try:
            mlflow.log_params(params)
            try:
                scores = run_cell(setup, refs, spec, job.config, seed_plots, attack)
            except Exception as exc:  # one broken method must not cost the rest of the grid
                if is_disk_full(exc):  # not the method's failure: every later cell would fail alike
                    with contextlib.suppress(Exception):
                        mlflow.set_tag(f"{TAG}error", "the disk ran out of space")
                    raise
                message = str(exc) if isinstance(exc, MubenchError) else f"{type(exc).__name__}: {exc}"
                log.debug("cell %s failed:\n%s", run.info.run_name, traceback.format_exc())
                mlflow.set_tag(f"{TAG}error", message[:5000])
                mlflow.end_run(status="FAILED")
                summary.failures.append(CellFailure(spec.row, splits.task, backbone, seed, message))
                cell_done(spec.row, splits, backbone, seed, error=message, quiet=plan.quiet)
                return
            mlflow.log_metrics(scores)
        except KeyboardInterrupt:
            end_interrupted(run.info.run_id)
            raise
    cell_done(spec.row, splits, backbone, seed, scores, quiet=plan.quiet)


INTERRUPTED = "interrupted"


def end_interrupted(run_id: str) -> None:
    """End run `run_id` as KILLED with the reason, if it is still the active run, so an interrupted cell or
    invocation never reads as a failure or as done."""
    active = mlflow.active_run()
    if active is None or active.info.run_id != run_id:
        return
    mlflow.set_tag(f"{TAG}error", INTERRUPTED)
    mlflow.end_run(status="KILLED")
