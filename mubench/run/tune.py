"""`mubench tune`: every method gets the same number of trials over its declared search space, scored on val-side
data only, as a distance to Retrain.

A trial unlearns a copy of each tuning seed's Original with one configuration (the same seeds for every trial, at
least two) and reads the result on retain, forget and val only: retain accuracy, forget accuracy, val accuracy and the
val-side membership reading, the monitor's FS on forget (members) vs val (non-members); under class-wise forgetting
the FS is blind (a model that forgets nothing generalises to the forgotten class's held-out images), so SalUn's
MIA-efficacy with val in place of test stands in for it. The objective is the mean absolute gap of those four
readings to the same readings of the seed's Retrain (read once per seed and kept for the tune), averaged over the
seeds: 0 is indistinguishable from Retrain, lower is better. This is DeepUnlearn's anchor (Cadet et al., 2024,
xcadet/deepunlearn `munl/hpsearch/objectives.py`: |Δ retain acc|, |Δ forget acc|, |Δ val acc| against Retrain and
the val MIA's discernibility), with mubench's MIA term (the FS relative to Retrain's, not to chance), two or more
seeds per trial and SalUn's class-wise terms. The test split is never read (no `metrics.score_model`).

Trial 0 of every study is the method's own default, so the tuned configuration competes with the paper's; the rest
come from Optuna's TPE sampler, seeded. Each study lives in `<out>/tune.db` (Optuna's RDB storage), so a killed tune
resumes: finished trials are kept, only the missing ones run. Every trial is an MLflow child run (kind=trial) of a
tuning run (kind=tune); boards read cells only.

The best configuration per method is written as a preset file (`<out>/tuned-preset.json`) that
`mubench run --preset-from` applies as `--set` overrides, tagging the cells it runs so their board says so.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import mlflow
import numpy as np
import torch
from torch import nn

from mubench.unlearn.api import METHODS
from mubench.core.config import param_text, stable_hash, value_text
from mubench.core.errors import MubenchError
from mubench.run.cell import INTERRUPTED, end_interrupted
from mubench.run.cell_keys import cell_key
from mubench.harness.plan import MethodSpec, RunPlan, RunSummary, SeedSetup
from mubench.unlearn.protocol import log_to_active_run, refuse_multilabel, split_monitor, unlearn_data, unlearn_once
from mubench.harness.references import References, train_references
from mubench.data.tasks import load_task
from mubench.core.tracking import mark_dead_runs_killed, open_store, process_tags, provenance_tags
from mubench.core.store import TAG
from mubench.scores import metrics

OBJECTIVE = ("mean over seeds of the gap to Retrain on val-side readings, ¼·(|Δ retain acc| + |Δ forget acc| + "
             "|Δ val acc| + |Δ FS(forget vs val)|); 0 = Retrain's, lower is better")
CLASS_WISE_OBJECTIVE = ("mean over seeds of the gap to Retrain on val-side readings, ¼·(|Δ RA| + |Δ UA| + "
                        "|Δ val acc| + |Δ MIA-efficacy(retain vs val → forget)|); 0 = Retrain's, lower is better")
OBJECTIVE_VERSION = 2  # 1: ½·(val acc + 1 − FS(forget vs val)), maximised on one seed; part of every study's name
EFFICACY_MIN_PER_SIDE = 2  # the SVC needs members and non-members to fit on, and a forget set to judge
TERMS = ("retain_acc", "forget_acc", "val_acc", "val_fs")
CLASS_WISE_TERMS = ("retain_acc", "forget_acc", "val_acc", "val_efficacy")  # |Δ UA| = |Δ forget acc|
TRIAL_SEEDS = 2  # seeds each trial is evaluated on, at least (one seed's FS is partly noise: see the README)
SAMPLER = "TPE"
PRESET_FILE = "tuned-preset.json"
STUDY_DB = "tune.db"
FORMAT = 1  # of the preset file

log = logging.getLogger(__name__)


class ValReadings(NamedTuple):
    """What a trial reads of a model, on retain, forget and val only (never test)."""
    retain_acc: float
    forget_acc: float
    val_acc: float  # under class-wise forgetting: on val's images of the remaining classes (as the monitor reads it)
    val_fs: float  # the monitor's FS: the paper's MIA on forget (members) vs val (non-members)
    val_mia: float
    val_efficacy: float  # class-wise only (else nan): SalUn's MIA-efficacy, retain vs val's other classes → forget


def objective_terms(splits) -> tuple[str, ...]:
    return CLASS_WISE_TERMS if splits.forgotten_classes else TERMS


def objective_text(splits) -> str:
    return CLASS_WISE_OBJECTIVE if splits.forgotten_classes else OBJECTIVE


def gap(reading: ValReadings, retrain: ValReadings, terms: tuple[str, ...] = TERMS) -> float:
    """One seed's objective: the mean absolute difference from Retrain's readings over `terms` (0: Retrain's)."""
    return sum(abs(getattr(reading, t) - getattr(retrain, t)) for t in terms) / len(terms)


def objective(readings: list[ValReadings], retrains: list[ValReadings], terms: tuple[str, ...] = TERMS) -> float:
    """The tuning objective, lower is better: the gap to each seed's Retrain, averaged over the seeds."""
    if not readings or len(readings) != len(retrains):
        raise ValueError(f"one reading per seed and one Retrain per seed are needed, not {len(readings)} and "
                         f"{len(retrains)}")
    return sum(gap(r, ref, terms) for r, ref in zip(readings, retrains)) / len(readings)


def val_readings(model: nn.Module, splits, device: torch.device) -> ValReadings:
    """Retain, forget and val accuracy, the monitor's FS and, under class-wise forgetting, the val-side MIA-efficacy
    of `model`: what `ctx.monitor()` reads (mubench.unlearn.protocol.make_monitor) plus the two train-side
    accuracies; nothing here touches splits.test."""
    forgotten_classes = splits.forgotten_classes
    retain_losses, retain_right = metrics.evaluate(model, splits.retain, splits.kind, splits.preprocess, device)
    forget_losses, forget_right = metrics.evaluate(model, splits.forget, splits.kind, splits.preprocess, device)
    val_losses, val_right = metrics.evaluate(model, splits.val, splits.kind, splits.preprocess, device)
    forgotten = metrics.in_classes(splits.val, forgotten_classes) if forgotten_classes else \
        np.zeros(len(splits.val), bool)
    attack = metrics.mia_scores(forget_losses, val_losses[forgotten] if forgotten_classes else val_losses)
    efficacy = math.nan
    if forgotten_classes:
        nonmembers = val_losses[~forgotten]
        members = retain_losses[: len(nonmembers)]
        if min(len(members), len(nonmembers), len(forget_losses)) < EFFICACY_MIN_PER_SIDE:
            raise MubenchError(f"the class-wise objective's MIA-efficacy needs at least {EFFICACY_MIN_PER_SIDE} "
                               f"retain, val (remaining classes) and forget images; there are {len(members)}, "
                               f"{len(nonmembers)} and {len(forget_losses)}.")
        efficacy = metrics.mia_efficacy(*(np.exp(-np.asarray(part, float)) for part in
                                          (members, nonmembers, forget_losses)))
    return ValReadings(metrics.mean_or_nan(retain_right), metrics.mean_or_nan(forget_right),
                       metrics.mean_or_nan(val_right[~forgotten]), metrics.forgetting_score(attack.mia), attack.mia,
                       efficacy)


@dataclass
class SeedReference:
    """One tuning seed: its references and Retrain's readings, read once for the whole tune."""
    seed: int
    refs: References
    retrain: ValReadings

    @property
    def retrain_seconds(self) -> float:
        return self.refs.retrain_record["train_seconds"]


def seed_references(plan: RunPlan, splits, recipe, backbone: str, seed: int, summary: RunSummary) -> SeedReference:
    """The seed's Original and Retrain (trained or from the cache) and Retrain's val-side readings."""
    refs = train_references(plan, splits, recipe, backbone, seed, summary)
    retrain = val_readings(refs.retrained, splits, plan.device)
    bad = [t for t in objective_terms(splits) if not math.isfinite(getattr(retrain, t))]
    if bad:
        raise MubenchError(f"Retrain of seed {seed} reads non-finite {', '.join(bad)} on {splits.task}; the tuning "
                           f"objective needs every one (is a split empty?).")
    return SeedReference(seed, refs, retrain)


@dataclass
class TunedMethod:
    method: str
    params: dict[str, object]  # the best trial's values of the searched fields
    best: float  # its objective (lower is better)
    default: float  # trial 0's objective: the method's defaults on this task
    trials: int  # finished trials counted against the budget (failed ones included)
    failed: int
    seconds: float  # unlearning time of those trials, every seed of each
    retrain_seconds: float  # one Retrain's training time (the mean over the tuning seeds)

    @property
    def cost(self) -> float:
        """The tuning's unlearning time as a multiple of one Retrain."""
        return self.seconds / self.retrain_seconds if self.retrain_seconds > 0 else math.nan


@dataclass
class TuneResult:
    methods: list[TunedMethod]
    tuning: dict[str, object]  # what the preset file records about how the tuning was done
    preset_path: Path
    parent_run_id: str
    trials_run: int = 0  # trials this invocation ran (a resumed tune runs only the missing ones)
    killed: list[str] = field(default_factory=list)


def startup(trials: int) -> int:
    """Random trials before TPE models the history (Optuna's 10 is most of a small budget)."""
    return max(2, min(10, trials // 2))


def check_methods(names: list[str], trials: int) -> None:
    if trials < 1:
        raise MubenchError(f"--trials {trials} must be at least 1: every method gets that many trials.")
    for name in names:
        if not METHODS.get(name).search_space:
            raise MubenchError(f"method {name!r} declares no search space (its search_space is empty), so there is "
                               f"nothing to tune; run it with its defaults or leave it out of --methods.")


def check_seeds(seeds: list[int]) -> None:
    if len(seeds) < TRIAL_SEEDS or len(set(seeds)) != len(seeds):
        raise MubenchError(f"tune evaluates every trial on at least {TRIAL_SEEDS} distinct seeds (one seed's reading "
                           f"is partly noise), not {', '.join(map(str, seeds)) or 'none'}; "
                           f"use --trial-seeds {TRIAL_SEEDS} or more.")


def study_name(plan: RunPlan, name: str, splits, recipe, backbone: str, seeds: list[int], threads: int) -> str:
    """One study per method × everything a trial's result depends on (the cell key of each tuning seed) × the search
    space × the objective: a tune with a changed method, space, task, recipe, seeds or objective starts a new study
    instead of mixing results."""
    space = {k: str(v) for k, v in METHODS.get(name).search_space.items()}
    spec = MethodSpec(name)
    keys = [cell_key(SeedSetup(plan, splits, recipe, backbone, seed), spec, spec.config_for(splits.task), threads)
            for seed in seeds]
    identity = {"cells": keys, "space": space, "objective": OBJECTIVE_VERSION, "terms": objective_terms(splits)}
    return (f"{name}/{splits.task}/{backbone}/{plan.preset}/s{'+'.join(map(str, seeds))}/"
            f"{stable_hash(identity, 12)}")


def tune(plan: RunPlan, methods: list[str], trials: int, sampler_seed: int = 0) -> TuneResult:
    """Tune each method over its search space with `trials` trials on plan.tasks[0] × plan.backbones[0], each trial
    evaluated on every seed of plan.seeds (at least two; the references of each), and write the preset file into
    plan.out."""
    import optuna
    from threadpoolctl import threadpool_limits
    check_methods(methods, trials)
    check_seeds(plan.seeds)
    task, backbone, seeds, scenario = plan.tasks[0], plan.backbones[0], list(plan.seeds), plan.scenarios[0]
    splits, recipe = load_task(task, plan.preset, plan.data_root, scenario, plan.task_options.get(task))[1:]
    experiment_id = open_store(plan.tracking_uri, plan.out)
    killed = mark_dead_runs_killed(plan.tracking_uri, experiment_id)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is one line of ours (run_trial)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(plan.out / STUDY_DB).resolve()}")
    default_threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads or default_threads)
    try:
        with threadpool_limits(plan.threads or None):
            threads = torch.get_num_threads()
            tuning = {"task": task, "scenario": scenario, "backbone": backbone, "preset": plan.preset,
                      "head": plan.head, "seeds": seeds, "trials": trials, "objective": objective_text(splits),
                      "sampler": SAMPLER, "sampler_seed": sampler_seed, "startup_trials": startup(trials),
                      "split_hash": splits.split_hash, "threads": threads,
                      "device": plan.device.type, "command": plan.command}
            parent_tags = {f"{TAG}kind": "tune", f"{TAG}command": plan.command, f"{TAG}preset": plan.preset,
                           **provenance_tags(), **process_tags()}
            with mlflow.start_run(run_name="mubench tune", tags=parent_tags) as parent:
                mlflow.log_params({f"tune.{k}": v for k, v in tuning.items() if k != "command"})
                summary = RunSummary(parent.info.run_id)
                references = [seed_references(plan, splits, recipe, backbone, seed, summary) for seed in seeds]
                mlflow.log_metrics({f"retrain.s{r.seed}.{k}": v for r in references
                                    for k, v in r.retrain._asdict().items() if math.isfinite(v)})
                result = TuneResult([], tuning, plan.out / PRESET_FILE, parent.info.run_id, killed=killed)
                try:
                    for name in methods:
                        result.methods.append(tune_method(plan, name, trials, sampler_seed, splits, recipe, backbone,
                                                          threads, references, storage, parent.info.run_id, result))
                except KeyboardInterrupt:
                    end_interrupted(parent.info.run_id)
                    raise
    finally:
        torch.set_num_threads(default_threads)
    write_preset(result)
    return result


def tune_method(plan, name, trials, sampler_seed, splits, recipe, backbone, threads,
                references: list[SeedReference], storage, parent_run_id, result: TuneResult) -> TunedMethod:
    import optuna
    from optuna.trial import TrialState
    cls = METHODS.get(name)
    space = cls.search_space
    seeds = [r.seed for r in references]
    study = optuna.create_study(study_name=study_name(plan, name, splits, recipe, backbone, seeds, threads),
                                storage=storage, direction="minimize", load_if_exists=True)
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # a killed tune's last trial
        storage.set_trial_user_attr(stale._trial_id, "killed", True)
        storage.set_trial_state_values(stale._trial_id, TrialState.FAIL)
    history = study.get_trials(deepcopy=False)
    # Seeded by the history's length: a resumed tune draws its own sequence, not the first trials' again.
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + len(history), n_startup_trials=startup(trials))
    if not any(t.user_attrs.get("default") and not t.user_attrs.get("killed") for t in history):
        defaults = MethodSpec(name).config_for(splits.task)
        study.enqueue_trial({k: getattr(defaults, k) for k in space}, user_attrs={"default": True})
    missing = trials - len(counted(study))
    if missing > 0:
        run = lambda trial: run_trial(plan, name, trial, splits, recipe, backbone, references, parent_run_id,
                                      study.study_name)
        before, first = len(counted(study)), len(study.get_trials(deepcopy=False))
        study.optimize(run, n_trials=missing, catch=(Exception,))
        result.trials_run += len(counted(study)) - before
        if any(t.user_attrs.get("error") == INTERRUPTED for t in study.get_trials(deepcopy=False)[first:]):
            raise KeyboardInterrupt
    done = counted(study)[:trials]
    complete = [t for t in done if t.state == TrialState.COMPLETE]
    if not complete:
        raise MubenchError(f"every one of {name}'s {len(done)} trials failed; the first: "
                           f"{done[0].user_attrs.get('error', 'no message') if done else 'none ran'}.")
    best = min(complete, key=lambda t: (t.value, t.number))
    default = next((t for t in done if t.user_attrs.get("default")), None)
    return TunedMethod(name, {k: best.params[k] for k in space}, best.value,
                       default.value if default is not None and default.state == TrialState.COMPLETE else math.nan,
                       len(done), sum(t.state == TrialState.FAIL for t in done),
                       sum(t.user_attrs.get("unlearn_seconds", 0.0) for t in done),
                       float(np.mean([r.retrain_seconds for r in references])))


def counted(study) -> list:
    """The trials that count against the budget, in order: finished or failed by the method, not killed."""
    from optuna.trial import TrialState
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED) and not t.user_attrs.get("killed")]


def interrupted(exc: BaseException) -> bool:
    """Whether `exc` was raised while handling a Ctrl-C (a KeyboardInterrupt in its chain of causes)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def run_trial(plan, name, trial, splits, recipe, backbone, references: list[SeedReference], parent_run_id,
              study: str) -> float:
    """One trial as an MLflow child run (kind=trial): its configuration, the val-side readings of every tuning seed,
    their gaps to Retrain and the objective."""
    import optuna
    try:
        try:
            return scored_trial(plan, name, trial, splits, recipe, backbone, references, parent_run_id, study)
        except Exception as exc:
            if not interrupted(exc):
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                reason = reason if len(reason) <= 300 else reason[:299] + "…"
                sys.stderr.write(f"{name} trial {trial.number} failed: {reason}\n")  # in place of Optuna's traceback
                raise
            raise KeyboardInterrupt from exc  # Ctrl-C mid-write left the store locked, and ending the run raised
    except KeyboardInterrupt:
        # Wherever Ctrl-C lands in the trial: stored as killed, so it does not count against the budget and a resume
        # runs it again; pruned, so Optuna stores it quietly instead of printing a traceback; the tune stops after it.
        trial.set_user_attr("killed", True)
        trial.set_user_attr("error", INTERRUPTED)
        trial.study.stop()
        raise optuna.TrialPruned() from None


def scored_trial(plan, name, trial, splits, recipe, backbone, references: list[SeedReference], parent_run_id,
                 study: str) -> float:
    """The trial's body: its configuration, the val-side readings of every tuning seed, their gaps to Retrain and
    the objective, as an MLflow child run (kind=trial)."""
    cls = METHODS.get(name)
    params = {k: dim.suggest(trial, k) for k, dim in cls.search_space.items()}
    spec = MethodSpec(name, tuple(params.items()))
    seeds = ",".join(str(r.seed) for r in references)
    tags = {f"{TAG}kind": "trial", f"{TAG}method": name, f"{TAG}study": study, f"{TAG}trial": str(trial.number),
            f"{TAG}task": splits.task, f"{TAG}backbone": backbone, f"{TAG}seeds": seeds,
            f"{TAG}preset": plan.preset, f"{TAG}command": plan.command, **process_tags()}
    terms = objective_terms(splits)
    with mlflow.start_run(run_name=f"{name} trial {trial.number}", nested=True, parent_run_id=parent_run_id,
                          tags=tags) as run:
        try:
            config = spec.config_for(splits.task)
            mlflow.log_params({f"cfg.{k}": v for k, v in param_text(config).items()})
            readings, seconds = [], []
            for ref in references:
                model, spent = unlearn_on_val(plan, name, config, splits, recipe, ref.seed, ref.refs)
                readings.append(val_readings(model, splits, plan.device))
                seconds.append(spent)
            value = objective(readings, [r.retrain for r in references], terms)
            if not math.isfinite(value):
                raise MubenchError(f"method {name!r} gave a non-finite val-side reading {readings}.")
            trial.set_user_attr("unlearn_seconds", sum(seconds))
            trial.set_user_attr("seeds", [r.seed for r in references])
            mlflow.log_metrics(trial_metrics(readings, references, terms, value, seconds))
        except KeyboardInterrupt:
            end_interrupted(run.info.run_id)  # KILLED, not FAILED, before the run's context ends it
            raise
        except Exception as exc:
            message = str(exc) if isinstance(exc, MubenchError) else f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", message[:2000])
            mlflow.set_tag(f"{TAG}error", message[:5000])
            mlflow.end_run(status="FAILED")
            raise
    return value


def trial_metrics(readings: list[ValReadings], references: list[SeedReference], terms: tuple[str, ...],
                  value: float, seconds: list[float]) -> dict[str, float]:
    """A trial's record: the objective, each reading and its gap to Retrain averaged over the seeds, each seed's own
    objective, the unlearning time of all seeds and the mean time ratio."""
    out = {"objective": value, "unlearn_seconds": sum(seconds),
           "time_ratio": float(np.mean([s / r.retrain_seconds for s, r in zip(seconds, references)]))}
    for k in ValReadings._fields:
        values = [getattr(r, k) for r in readings]
        if all(math.isfinite(v) for v in values):
            out[k] = float(np.mean(values))
    for t in terms:
        out[f"gap_{t}"] = float(np.mean([abs(getattr(r, t) - getattr(ref.retrain, t))
                                         for r, ref in zip(readings, references)]))
    for r, ref in zip(readings, references):
        out[f"objective_s{ref.seed}"] = gap(r, ref.retrain, terms)
    return out


def unlearn_on_val(plan, name, config, splits, recipe, seed, refs) -> tuple[nn.Module, float]:
    """Unlearn a copy of the seed's Original as a cell does (the method's ctx.monitor() reads forget vs val only):
    the model and the unlearning time. Nothing here touches splits.test."""
    unlearner = METHODS.get(name)(config)
    refuse_multilabel(unlearner, splits)
    data = unlearn_data(splits, recipe.batch_size, plan.device)
    monitor = split_monitor(splits, data)
    done = unlearn_once(unlearner, refs.original, data, seed=seed, monitor=monitor,
                        retrained=lambda: (copy.deepcopy(refs.retrained), refs.retrain_record["train_seconds"]))
    log_to_active_run(done.logged)
    return done.model, done.seconds


# The preset file -------------------------------------------------------------------------------------------------

def write_preset(result: TuneResult) -> None:
    payload = {"format": FORMAT, "tuning": result.tuning,
               "methods": {m.method: {"set": {k: value_text(v) for k, v in m.params.items()},
                                      "objective": m.best, "default_objective": m.default, "trials": m.trials,
                                      "failed_trials": m.failed, "unlearn_seconds": m.seconds,
                                      "cost_x_retrain": m.cost}
                           for m in result.methods}}
    result.preset_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def set_lines(result: TuneResult) -> list[str]:
    """One line of `--set` options per method: its best configuration."""
    return [" ".join(f"--set {m.method}.{k}={value_text(v)}" for k, v in m.params.items()) for m in result.methods]


def tuned_note(tuning: dict) -> str:
    """How a tuned row's configuration was chosen, for its cells' tag and the board's header."""
    scenario = "" if tuning["scenario"] == "random" else f" [{tuning['scenario']}]"
    seeds = tuning.get("seeds", [tuning.get("seed")])  # a preset of objective 1 recorded its one seed as "seed"
    where = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))} per trial"
    return (f"{tuning['trials']} trials per method on val of {tuning['task']}{scenario} ({tuning['preset']}, "
            f"{tuning['backbone']}, {where}), objective {tuning['objective']}, "
            f"{tuning['sampler']} sampler seed {tuning['sampler_seed']}")


def read_preset(path: Path) -> dict:
    """The preset file as written by `tune`, checked for its form and its methods."""
    try:
        payload = json.loads(Path(path).read_text())
    except OSError as exc:
        raise MubenchError(f"--preset-from {str(path)!r} cannot be read ({exc.strerror or exc}).") from None
    except json.JSONDecodeError as exc:
        raise MubenchError(f"--preset-from {str(path)!r} is not a preset written by `mubench tune` "
                           f"(not JSON: {exc.msg}).") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or \
            not isinstance(payload.get("methods"), dict) or not isinstance(payload.get("tuning"), dict):
        raise MubenchError(f"--preset-from {str(path)!r} is not a preset written by `mubench tune` "
                           f"(format {FORMAT}).")
    for name, entry in payload["methods"].items():
        METHODS.resolve(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("set"), dict):
            raise MubenchError(f"--preset-from {str(path)!r}: the entry of method {name!r} has no \"set\" mapping of "
                               f"field to value, as `mubench tune` writes it.")
    return payload


def preset_assignments(payload: dict, methods: list[str], given: tuple[str, ...] | list[str]) -> list[str]:
    """The preset's `--set` assignments for the methods being run, after those given: an explicit --set of the same
    field wins."""
    explicit = {item.partition("=")[0] for item in given}
    tuned = [name for name in payload["methods"] if name in methods]
    if not tuned:
        raise MubenchError(f"the preset tunes {', '.join(payload['methods']) or 'no method'}, none of the methods "
                           f"to run ({', '.join(methods)}).")
    out = []
    for name in tuned:
        for k, v in payload["methods"][name]["set"].items():
            if f"{name}.{k}" not in explicit:
                out.append(f"{name}.{k}={v}")
    return out


def tag_tuned_cells(tracking_uri: str, parent_run_id: str, payload: dict, labels: list[str],
                    boards: set[tuple[str, str]]) -> None:
    """Mark the cells of the tuned rows (tag `tuned`: how the configuration was chosen): this run's and those an
    earlier, killed run from the same preset finished (a rerun skips them), on this run's (task, scenario) boards
    only: a preset tuned for another scenario may give a method the same configuration, and so the same label."""
    client = mlflow.MlflowClient(tracking_uri)
    note = tuned_note(payload["tuning"])
    client.set_tag(parent_run_id, f"{TAG}tuned", note)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{TAG}kind` = 'cell'", max_results=50000)
    for run in runs:
        tags = run.data.tags
        board = (tags.get(f"{TAG}task"), tags.get(f"{TAG}scenario", "random"))
        if tags.get(f"{TAG}label") in labels and board in boards and tags.get(f"{TAG}tuned") != note:
            client.set_tag(run.info.run_id, f"{TAG}tuned", note)
