"""mubench tune: search spaces hold the defaults, the objective is the gap to Retrain on val-side readings over two
seeds, the sampler is seeded, test is never read, a killed tune resumes, and the preset file round-trips into
`mubench run`. The trials tune SSD on the smoke preset (no optimiser steps: the cheapest method with a search space;
NegGrad's 47-step floor makes its trial cost 20 smoke Retrains); where only the objective's arithmetic or the budget
is tested, a stub returns a reference model instead of unlearning."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import optuna
import pytest
import torch

import mubench.run.tune as tune_module
from mubench.unlearn.api import METHODS
from mubench.core.errors import MubenchError
from mubench.harness.plan import RunPlan, method_specs
from mubench.core.search import Choice, IntRange, LogUniform, Uniform, outside_space
from mubench.core.tracking import default_tracking_uri
from mubench.boards.leaderboard import tuned_lines, tuned_row
from mubench.run.tune import (PRESET_FILE, STUDY_DB, ValReadings, objective, preset_assignments, read_preset,
                              tag_tuned_cells, tune)
from conftest import invoke

METHOD = "ssd"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tune-cache")


def make_plan(out: Path, cache: Path, scenario: str = "random", seeds=(0, 1)) -> RunPlan:
    return RunPlan(methods=[], tasks=["digits"], backbones=["resnet18"], seeds=list(seeds), out=out,
                   tracking_uri=default_tracking_uri(out), cache_dir=cache, preset="smoke", quiet=True, plots=False,
                   threads=1, command="test", scenarios=[scenario])


def study_trials(out: Path, method: str = METHOD) -> list:
    storage = f"sqlite:///{out / STUDY_DB}"
    (summary,) = [s for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith(f"{method}/")]
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()


def stub_unlearning(monkeypatch, pick):
    """Trials that unlearn nothing: each seed's trial returns a copy of `pick(refs, call)` (call counts from 1) in 0 s.
    Returns the seeds the trials were run on, one entry per call."""
    seeds = []

    def stub(plan, name, config, splits, recipe, seed, refs):
        seeds.append(seed)
        return copy.deepcopy(pick(refs, len(seeds))), 0.0
    monkeypatch.setattr(tune_module, "unlearn_on_val", stub)
    return seeds


def trial_record(trials) -> list[tuple]:
    return [(t.number, t.state, t.params, t.value) for t in trials]


@pytest.fixture(scope="module")
def first_tune(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("tune-a")
    return out, tune(make_plan(out, cache), [METHOD], trials=3)


# Search spaces -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", METHODS.names())
def test_every_default_lies_in_its_space(name):
    cls = METHODS.get(name)
    assert outside_space(cls.search_space, cls.Config()) == []
    for task, fields in cls.task_defaults.items():
        assert outside_space(cls.search_space, cls.Config(**fields)) == [], task


def test_methods_with_a_space_search_two_to_four_knobs():
    sizes = {name: len(METHODS.get(name).search_space) for name in METHODS.names()}
    assert all(size == 0 or 2 <= size <= 4 for size in sizes.values()), sizes
    assert sizes["original"] == sizes["retrain"] == 0  # references are not tuned
    assert all(sizes[name] for name in ("finetune", "neggrad+", "scrub", "dlfd"))


def test_dimensions_contain_their_bounds_and_refuse_the_rest():
    assert LogUniform(1e-3, 1e-1).contains(1e-3) and not LogUniform(1e-3, 1e-1).contains(0.2)
    assert Uniform(0.5, 1.0).contains(1.0) and not Uniform(0.5, 1.0).contains(True)
    assert IntRange(1, 5).contains(5) and not IntRange(1, 5).contains(2.0) and not IntRange(1, 5).contains(6)
    assert Choice("a", "b").contains("b") and not Choice(True, False).contains(1)
    assert IntRange(1, 8, log=True).lo == 1  # a log scale may start at 1
    for bad in (lambda: LogUniform(0.0, 1.0), lambda: Uniform(1.0, 1.0), lambda: IntRange(3, 2), lambda: Choice("a"),
                lambda: IntRange(0, 8, log=True)):
        with pytest.raises(MubenchError):
            bad()



@pytest.mark.parametrize("dimension", [LogUniform(1e-3, 1e-1), Uniform(0.5, 1.0), IntRange(1, 5), Choice("a", "b")])
def test_a_declared_dimension_is_frozen_and_hashable(dimension):
    """Spaces are class attributes shared by every study of a method: none may be edited in place."""
    import dataclasses
    field = dataclasses.fields(dimension)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(dimension, field, getattr(dimension, field))
    assert hash(dimension) == hash(dataclasses.replace(dimension) if not isinstance(dimension, Choice) else
                                   Choice("a", "b"))


def test_a_field_the_config_lacks_is_outside():
    cls = METHODS.get(METHOD)
    assert outside_space({"no_such_field": Uniform(0.0, 1.0)}, cls.Config())


# Tuning --------------------------------------------------------------------------------------------------------

def test_trial_zero_is_the_default_and_the_best_is_no_worse(first_tune):
    out, result = first_tune
    trials = study_trials(out)
    defaults = METHODS.get(METHOD).Config()
    assert trials[0].user_attrs["default"] is True
    assert trials[0].params == {k: getattr(defaults, k) for k in METHODS.get(METHOD).search_space}
    (tuned,) = result.methods
    assert tuned.trials == len(trials) == 3 and tuned.default == trials[0].value
    assert tuned.best == min(t.value for t in trials) <= tuned.default  # a gap to Retrain: lower is better
    assert all(t.value >= 0 and t.user_attrs["seeds"] == [0, 1] for t in trials)
    assert tuned.cost == pytest.approx(tuned.seconds / tuned.retrain_seconds)


# The objective: the gap to Retrain ------------------------------------------------------------------------------

RETRAIN = ValReadings(retain_acc=0.9, forget_acc=0.6, val_acc=0.62, val_fs=0.05, val_mia=0.525, val_efficacy=0.8)


def test_the_objective_is_the_mean_gap_to_retrain_over_readings_and_seeds():
    other = ValReadings(1.0, 1.0, 0.6, 0.3, 0.65, 0.1)
    assert objective([RETRAIN, RETRAIN], [RETRAIN, RETRAIN]) == 0.0  # Retrain's own readings: the best possible
    expected = (0.1 + 0.4 + 0.02 + 0.25) / 4
    assert objective([other], [RETRAIN]) == pytest.approx(expected)
    assert objective([other, RETRAIN], [RETRAIN, RETRAIN]) == pytest.approx(expected / 2)  # the mean over seeds
    # class-wise: UA's gap is the forget accuracy's, and MIA-efficacy replaces the FS (blind there)
    assert objective([other], [RETRAIN], tune_module.CLASS_WISE_TERMS) == pytest.approx((0.1 + 0.4 + 0.02 + 0.7) / 4)
    better_val = RETRAIN._replace(val_acc=0.9)  # more val accuracy than Retrain is a gap too: the anchor is Retrain
    assert objective([better_val], [RETRAIN]) > 0


def test_a_trial_equal_to_retrain_scores_zero_and_one_that_does_nothing_scores_worse_class_wise(tmp_path, cache,
                                                                                              monkeypatch):
    """Under class-wise forgetting the old objective (val acc and FS) scored doing nothing well; the gap to Retrain
    does not: trial 0 returns each seed's Retrain, trial 1 its Original (what a method that does nothing returns)."""
    stub_unlearning(monkeypatch, lambda refs, call: refs.retrained if call <= 2 else refs.original)
    result = tune(make_plan(tmp_path, cache, scenario="class:3"), [METHOD], trials=2)
    retrain_trial, do_nothing = study_trials(tmp_path)
    assert retrain_trial.value == 0.0 and result.methods[0].best == 0.0
    assert do_nothing.value > 0.25  # forget accuracy alone is ~1 against Retrain's ~0
    assert result.tuning["objective"] == tune_module.CLASS_WISE_OBJECTIVE


def test_val_readings_read_what_the_monitor_reads_and_never_test(cache, tmp_path, monkeypatch):
    from mubench.harness.plan import RunSummary
    from mubench.unlearn.protocol import split_monitor, unlearn_data
    plan = make_plan(tmp_path, cache, scenario="class:3")
    splits, recipe = tune_module.load_task("digits", "smoke", None, "class:3")[1:]
    refs = tune_module.train_references(plan, splits, recipe, "resnet18", 0, RunSummary("none"))
    monitor = split_monitor(splits, unlearn_data(splits, recipe.batch_size, plan.device))
    for model in (refs.original, refs.retrained):
        readings, reading = tune_module.val_readings(model, splits, plan.device), monitor(model)
        assert (readings.val_fs, readings.val_mia, readings.val_acc) == pytest.approx(
            (reading.forgetting_score, reading.mia, reading.val_accuracy))
    original, retrained = (tune_module.val_readings(m, splits, plan.device) for m in (refs.original, refs.retrained))
    assert original.forget_acc > 0.5 > retrained.forget_acc  # UA: Retrain never saw the class
    assert 0 <= original.val_efficacy <= 1 and 0 <= retrained.val_efficacy <= 1
    seen, evaluate = [], tune_module.metrics.evaluate
    monkeypatch.setattr(tune_module.metrics, "evaluate", lambda model, split, *a, **k: seen.append(split) or
                        evaluate(model, split, *a, **k))
    tune_module.val_readings(refs.original, splits, plan.device)
    assert [id(x) for x in seen] == [id(splits.retain), id(splits.forget), id(splits.val)]  # never splits.test


def test_every_trial_is_scored_on_two_seeds_whose_references_and_retrain_readings_are_read_once(tmp_path, cache,
                                                                                                monkeypatch):
    trained, read = [], []
    real_train, real_read = tune_module.train_references, tune_module.val_readings
    monkeypatch.setattr(tune_module, "train_references",
                        lambda plan, splits, recipe, backbone, seed, summary:
                        trained.append(seed) or real_train(plan, splits, recipe, backbone, seed, summary))
    monkeypatch.setattr(tune_module, "val_readings", lambda *a, **k: read.append(1) or real_read(*a, **k))
    seeds = stub_unlearning(monkeypatch, lambda refs, call: refs.original)
    result = tune(make_plan(tmp_path, cache), [METHOD], trials=3)
    assert trained == [0, 1]  # each seed's references once for the whole tune
    assert seeds == [0, 1] * 3  # every trial unlearns both seeds' Originals
    assert len(read) == 2 + 3 * 2  # Retrain's readings once per seed, then one per trial and seed
    assert all(t.user_attrs["seeds"] == [0, 1] for t in study_trials(tmp_path))
    assert result.tuning["seeds"] == [0, 1]


def test_every_method_gets_the_same_number_of_trials_and_trial_zero_is_its_default(tmp_path, cache, monkeypatch):
    stub_unlearning(monkeypatch, lambda refs, call: refs.original)
    methods = [METHOD, "finetune"]
    result = tune(make_plan(tmp_path, cache), methods, trials=3)
    assert [(m.method, m.trials, m.failed) for m in result.methods] == [(name, 3, 0) for name in methods]
    for name in methods:
        trials = study_trials(tmp_path, name)
        defaults = METHODS.get(name).Config()
        assert len(trials) == 3 and trials[0].user_attrs["default"] is True
        assert trials[0].params == {k: getattr(defaults, k) for k in METHODS.get(name).search_space}


def test_one_seed_is_refused(tmp_path, cache):
    with pytest.raises(MubenchError, match="at least 2 distinct seeds"):
        tune(make_plan(tmp_path, cache, seeds=(0,)), [METHOD], trials=2)
    assert not (tmp_path / STUDY_DB).exists()


def test_a_changed_objective_or_seed_set_starts_a_new_study(monkeypatch, cache, tmp_path):
    splits, recipe = tune_module.load_task("digits", "smoke", None)[1:]
    plan = make_plan(tmp_path, cache)
    name = lambda seeds: tune_module.study_name(plan, METHOD, splits, recipe, "resnet18", seeds, 1)
    before = name([0, 1])
    assert name([0, 2]) != before and name([0, 1]) == before
    monkeypatch.setattr(tune_module, "OBJECTIVE_VERSION", tune_module.OBJECTIVE_VERSION + 1)
    assert name([0, 1]) != before


@pytest.mark.slow  # the scrambled-test check below compares the same records (a scrambled test changes none)
def test_the_sampler_is_seeded(first_tune, tmp_path, cache):
    out, _ = first_tune
    tune(make_plan(tmp_path, cache), [METHOD], trials=3)
    assert trial_record(study_trials(tmp_path)) == trial_record(study_trials(out))


def test_scrambled_test_split_changes_nothing(first_tune, tmp_path, cache, monkeypatch):
    """As the conformance kit's check: the test split is replaced in place; a tune that read it would differ."""
    out, _ = first_tune
    load_task, seen = tune_module.load_task, []

    def scrambled(*args, **kwargs):
        task, splits, recipe = load_task(*args, **kwargs)
        test = splits.test
        seen.append((test, test.images.clone(), test.labels.clone()))
        test.images.copy_(255 - test.images)
        test.labels.copy_((test.labels + 1) % splits.num_outputs)
        return task, splits, recipe

    monkeypatch.setattr(tune_module, "load_task", scrambled)
    try:
        tune(make_plan(tmp_path, cache), [METHOD], trials=2)  # trial 0 (the defaults) and one TPE draw
    finally:
        for test, images, labels in seen:  # in place, as the data may be shared with later tests
            test.images.copy_(images)
            test.labels.copy_(labels)
    (test, images, labels), = seen
    assert not torch.equal(255 - images, images)  # the scramble did change the test split the tune was given
    assert trial_record(study_trials(tmp_path)) == trial_record(study_trials(out))[:2]


def test_a_killed_tune_resumes_with_the_missing_trials_only(tmp_path, cache, monkeypatch):
    stub_unlearning(monkeypatch, lambda refs, call: refs.original)  # the study's bookkeeping, not the method
    plan = make_plan(tmp_path, cache)
    first = tune(plan, [METHOD], trials=2)
    assert first.trials_run == 2
    before = trial_record(study_trials(tmp_path))
    storage = f"sqlite:///{tmp_path / STUDY_DB}"
    (summary,) = optuna.get_all_study_summaries(storage)
    optuna.load_study(study_name=summary.study_name, storage=storage).ask()  # a trial left RUNNING by a kill
    again = tune(plan, [METHOD], trials=4)
    trials = study_trials(tmp_path)
    assert again.trials_run == 2
    assert trial_record(trials[:2]) == before  # the finished trials are kept, not rerun
    assert trials[2].state == optuna.trial.TrialState.FAIL and trials[2].user_attrs["killed"]
    assert again.methods[0].trials == 4 and again.methods[0].failed == 0
    assert tune(plan, [METHOD], trials=4).trials_run == 0


def test_an_interrupted_trial_is_killed_not_failed_and_a_resume_runs_it_again(tmp_path, cache, monkeypatch):
    from mlflow import MlflowClient
    from mubench.core.store import EXPERIMENT
    stub_unlearning(monkeypatch, lambda refs, call: refs.original)  # the study's bookkeeping, not the method
    real, calls = tune_module.unlearn_on_val, []

    def second_is_interrupted(*args, **kwargs):  # trial 1's first seed (trial 0 unlearns seeds 0 and 1)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(tune_module, "unlearn_on_val", second_is_interrupted)
    plan = make_plan(tmp_path, cache)
    with pytest.raises(KeyboardInterrupt):
        tune(plan, [METHOD], trials=3)
    trials = study_trials(tmp_path)
    assert len(trials) == 2 and trials[0].state == optuna.trial.TrialState.COMPLETE
    assert trials[1].user_attrs["killed"] and trials[1].user_attrs["error"] == "interrupted"
    client = MlflowClient(default_tracking_uri(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED", "KILLED"}
    assert {r.data.tags.get("mubench.error") for r in runs if r.info.status == "KILLED"} == {"interrupted"}
    killed_kinds = sorted(r.data.tags["mubench.kind"] for r in runs if r.info.status == "KILLED")
    assert killed_kinds == ["trial", "tune"]
    monkeypatch.setattr(tune_module, "unlearn_on_val", real)
    again = tune(plan, [METHOD], trials=3)
    assert again.trials_run == 2  # the interrupted trial does not count against the budget
    assert (again.methods[0].trials, again.methods[0].failed) == (3, 0)


def test_trials_are_child_runs_the_boards_never_show(first_tune):
    from mlflow import MlflowClient
    from mubench.core.tracking import cell_runs
    from mubench.core.store import EXPERIMENT
    out, result = first_tune
    client = MlflowClient(default_tracking_uri(out))
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(runs) == 3 and {r.data.tags["mubench.kind"] for r in runs} == {"trial"}
    assert not any(k.startswith("test") for r in runs for k in r.data.metrics)  # no test metric is computed
    assert cell_runs(default_tracking_uri(out)).empty


# The preset ----------------------------------------------------------------------------------------------------

def test_the_preset_round_trips_into_run_configs(first_tune):
    out, result = first_tune
    payload = read_preset(out / PRESET_FILE)
    (tuned,) = result.methods
    (spec,) = method_specs([METHOD], preset_assignments(payload, [METHOD], []), references=False)
    config = spec.config_for("digits")
    assert {k: getattr(config, k) for k in tuned.params} == tuned.params
    assert payload["tuning"]["trials"] == 3 and payload["tuning"]["sampler_seed"] == 0
    explicit = f"{METHOD}.alpha=50"  # an explicit --set wins over the preset
    assert not any(a.startswith(f"{METHOD}.alpha=") for a in preset_assignments(payload, [METHOD], [explicit]))


def test_run_from_the_preset_tags_its_cells_and_the_board_says_so(first_tune, cache):
    out, result = first_tune
    run = invoke("run", "--preset", "smoke", "--methods", METHOD, "--out", str(out), "--cache-dir", str(cache),
                 "--threads", "1", "--quiet", "--no-plots", "--preset-from", str(out / PRESET_FILE))
    assert run.exit_code == 0, run.output + run.stderr
    board = (out / "leaderboards" / "digits-resnet18-smoke.md").read_text()
    settings = json.loads((out / PRESET_FILE).read_text())["methods"][METHOD]["set"]
    assert f"Tuned with `mubench tune` ({result.tuning['trials']} trials per method" in board
    assert f"| {METHOD} tuned " in board  # the row, named for its method; its settings in the tuned line
    assert all(f"{key}=" in board.split("Tuned with")[1] for key in settings)
    assert "TPE sampler seed 0" in board and "seeds 0, 1 per trial" in board and "gap to Retrain" in board


def test_the_tuned_line_gives_each_rows_settings_and_says_when_the_defaults_won():
    import pandas as pd
    cells = pd.DataFrame({"label": ["scrub", "scrub tuned", "salun", "salun tuned"],
                          "method": ["scrub", "scrub", "salun", "salun"], "tuned": [None, "how", None, "how"],
                          "settings": [None, "lr=0.1", None, "lr=0.013"], "config_hash": ["a", "b", "c", "c"]})
    line, blank = tuned_lines(cells[["label"]], cells)
    assert line == ("Tuned with `mubench tune` (how): salun tuned (lr=0.013, its defaults: trial 0 was the best); "
                    "scrub tuned (lr=0.1).") and blank == ""


def test_a_preset_tags_only_the_cells_of_its_runs_boards_even_where_another_scenario_has_the_same_label(tmp_path):
    """Presets tuned on two scenarios can give a method the same configuration (its defaults won on both): each run
    tags the cells of its own boards, so the random board never carries the class-wise tuning's note."""
    from mlflow import MlflowClient
    from mubench.core.store import EXPERIMENT, TAG
    client = MlflowClient(default_tracking_uri(tmp_path))
    experiment = client.create_experiment(EXPERIMENT)
    label = "salun[lr=0.013]"
    cells = {scenario: client.create_run(experiment, tags={f"{TAG}kind": "cell", f"{TAG}label": label,
                                                          f"{TAG}task": "digits", f"{TAG}scenario": scenario}).info.run_id
             for scenario in ("random", "class:3")}
    tuning = {"task": "digits", "preset": "default", "backbone": "resnet18", "seeds": [10, 11], "trials": 10,
              "objective": "gap", "sampler": "TPE", "sampler_seed": 0}
    for scenario in ("random", "class:3"):
        parent = client.create_run(experiment).info.run_id
        tag_tuned_cells(default_tracking_uri(tmp_path), parent, {"tuning": {**tuning, "scenario": scenario}}, [label],
                        {("digits", scenario)})
    notes = {scenario: client.get_run(run_id).data.tags[f"{TAG}tuned"] for scenario, run_id in cells.items()}
    assert "[class:3]" in notes["class:3"] and "[class:3]" not in notes["random"]


def test_a_tuned_row_is_named_for_its_method_with_its_settings_at_three_significant_digits():
    assert tuned_row("scrub", "scrub[lr=0.008459126528049376,epochs=4]", "") == (
        "scrub tuned", "scrub tuned", "lr=0.00846, epochs=4")
    assert tuned_row("dlfd", "dlfd[w_ot=3.9194800277489583,steps=19,no-ot]", "no-ot") == (
        "dlfd tuned[no-ot]", "dlfd tuned", "w_ot=3.92, steps=19")


def test_a_bad_preset_file_is_one_sentence(tmp_path):
    bad = tmp_path / "preset.json"
    bad.write_text(json.dumps({"format": 1, "tuning": {}, "methods": {"finetune": {"set": {}}}}))
    result = invoke("run", "--methods", "scrub", "--preset-from", str(bad), "--out", str(tmp_path))
    assert result.exit_code == 2 and "none of the methods to run" in result.stderr
    bad.write_text("not json")
    result = invoke("run", "--methods", "finetune", "--preset-from", str(bad), "--out", str(tmp_path))
    assert result.exit_code == 2 and "not a preset" in result.stderr


# Bad input -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--methods", "nope"], "nope"),
    (["--methods", METHOD, "--trials", "0"], "--trials 0"),
    (["--methods", "original"], "no search space"),
    (["--methods", METHOD, "--tasks", "digits,digits"], "one task"),
    (["--methods", METHOD, "--trial-seeds", "1"], "--trial-seeds"),
])
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, args, words):
    result = invoke("tune", *args, "--out", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / STUDY_DB).exists()



def test_the_preset_and_the_tune_run_record_every_condition_of_the_search(first_tune):
    """What a reader needs to know where a preset came from (and what a later tune must match to resume it)."""
    from mlflow import MlflowClient
    out, result = first_tune
    tuning = read_preset(out / PRESET_FILE)["tuning"]
    splits = tune_module.load_task("digits", "smoke", None)[1]
    assert tuning == {"task": "digits", "scenario": "random", "backbone": "resnet18", "preset": "smoke",
                      "head": "linear", "seeds": [0, 1], "trials": 3, "objective": tune_module.OBJECTIVE,
                      "sampler": tune_module.SAMPLER, "sampler_seed": 0, "startup_trials": tune_module.startup(3),
                      "split_hash": splits.split_hash, "threads": 1, "device": "cpu", "command": "test"}
    params = MlflowClient(default_tracking_uri(out)).get_run(result.parent_run_id).data.params
    assert params == {f"tune.{k}": str(v) for k, v in tuning.items() if k != "command"}


def test_each_trial_run_carries_its_objective_and_the_readings_it_came_from(first_tune):
    from mlflow import MlflowClient
    from mubench.core.store import EXPERIMENT
    out, result = first_tune
    client = MlflowClient(default_tracking_uri(out))
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    trials = {t.number: t for t in study_trials(out)}
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        assert tags["mubench.kind"] == "trial" and tags["mubench.method"] == METHOD
        assert (tags["mubench.task"], tags["mubench.backbone"], tags["mubench.seeds"]) == ("digits", "resnet18", "0,1")
        trial = trials[int(tags["mubench.trial"])]
        assert metrics["objective"] == pytest.approx(trial.value)
        gaps = [metrics[f"gap_{t}"] for t in tune_module.TERMS]
        assert metrics["objective"] == pytest.approx(sum(gaps) / 4)  # the mean gap to Retrain over the four readings
        assert metrics["objective"] == pytest.approx((metrics["objective_s0"] + metrics["objective_s1"]) / 2)
        assert {"retain_acc", "forget_acc", "val_acc", "val_fs", "val_mia", "unlearn_seconds",
                "time_ratio"} <= set(metrics)
        assert not any("test" in k for k in metrics)


def test_a_failed_trial_counts_against_the_budget_and_keeps_its_reason_in_the_study_and_the_store(tmp_path, cache,
                                                                                                 monkeypatch, capsys):
    from mlflow import MlflowClient
    from mubench.core.errors import MubenchError
    from mubench.core.store import EXPERIMENT
    reason = "diverged: " + "x" * 6000  # longer than either store keeps
    stub_unlearning(monkeypatch, lambda refs, call: refs.original)  # the study's bookkeeping, not the method
    real, calls = tune_module.unlearn_on_val, []

    def second_fails(*args, **kwargs):  # trial 1's second seed
        calls.append(1)
        if len(calls) == 4:
            raise MubenchError(reason)
        return real(*args, **kwargs)
    monkeypatch.setattr(tune_module, "unlearn_on_val", second_fails)
    result = tune(make_plan(tmp_path, cache), [METHOD], trials=3)
    assert (result.methods[0].trials, result.methods[0].failed) == (3, 1)
    said = capsys.readouterr().err
    assert "Traceback" not in said and [line for line in said.splitlines() if "failed" in line] == [
        f"{METHOD} trial 1 failed: {reason[:299]}…"]  # one line, in place of Optuna's traceback
    failed = [t for t in study_trials(tmp_path) if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["error"] == reason[:2000]
    client = MlflowClient(default_tracking_uri(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    failed_runs = [r for r in runs if r.info.status == "FAILED"]
    assert len(runs) == 3 and len(failed_runs) == 1
    assert failed_runs[0].data.tags["mubench.error"] == reason[:5000]


def test_a_method_whose_every_trial_fails_is_one_sentence_naming_the_first_reason(tmp_path, cache, monkeypatch):
    from mubench.core.errors import MubenchError

    def fails(*args, **kwargs):
        raise MubenchError("no convergence")
    monkeypatch.setattr(tune_module, "unlearn_on_val", fails)
    with pytest.raises(MubenchError, match=f"every one of {METHOD}'s 2 trials failed; the first: no convergence"):
        tune(make_plan(tmp_path, cache), [METHOD], trials=2)


@pytest.mark.parametrize("trials, random_first", [(2, 2), (3, 2), (4, 2), (5, 2), (6, 3), (12, 6), (20, 10),
                                                  (100, 10)])
def test_half_the_budget_is_random_trials_at_least_two_and_at_most_optunas_ten(trials, random_first):
    assert tune_module.startup(trials) == random_first


def test_the_preset_file_records_each_methods_outcome_as_the_study_holds_it(first_tune):
    out, result = first_tune
    trials = study_trials(out)
    best = min(trials, key=lambda t: (t.value, t.number))
    entry = read_preset(out / PRESET_FILE)["methods"][METHOD]
    assert entry["objective"] == best.value and entry["default_objective"] == trials[0].value
    assert (entry["trials"], entry["failed_trials"]) == (3, 0)
    assert entry["unlearn_seconds"] == pytest.approx(sum(t.user_attrs["unlearn_seconds"] for t in trials))
    assert entry["cost_x_retrain"] == pytest.approx(entry["unlearn_seconds"] / result.methods[0].retrain_seconds)
    assert entry["set"] == {k: str(v) for k, v in best.params.items()}


def test_an_error_raised_while_handling_ctrl_c_counts_as_the_interrupt():
    from mubench.run.tune import interrupted
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("database is locked")  # as ending the MLflow run did, mid-write
    except RuntimeError as exc:
        assert interrupted(exc)
    assert not interrupted(RuntimeError("database is locked"))


def test_ctrl_c_on_a_real_tune_is_one_line_exit_130_and_leaves_no_trial_failed_or_running(tmp_path):
    """SIGINT to `mubench tune` while a trial runs, as a user's Ctrl-C: no Optuna traceback, the trial killed (not
    counted), and the same command then runs exactly the trials the budget still lacks."""
    import signal
    import sqlite3
    import time
    from contextlib import closing
    from test_grid import MUBENCH, interruptible, mubench
    command = ["tune", "--methods", METHOD, "--trials", "3", "--preset", "smoke", "--threads", "1", "--quiet",
               "--out", str(tmp_path)]
    process = interruptible([str(MUBENCH), *command])

    def trial_states() -> list[str]:
        try:
            with closing(sqlite3.connect(f"file:{tmp_path / STUDY_DB}?mode=ro", uri=True, timeout=30)) as conn:
                return [state for (state,) in conn.execute("select state from trials order by number")]
        except sqlite3.Error:
            return []
    deadline = time.monotonic() + 300
    # trial 1 of 3 running: trial 2 is still to come, so the signal cannot reach a tune that has nothing left to stop
    seen: list[str] = []
    while time.monotonic() < deadline and process.poll() is None and seen[1:2] != ["RUNNING"]:
        seen = trial_states()
        time.sleep(0 if seen[1:2] == ["RUNNING"] else 0.05)
    assert process.poll() is None and seen[1:2] == ["RUNNING"], f"the tune ended before it could be interrupted: {seen}"
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 130, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith("interrupted: ") and "Traceback" not in stderr
    states = trial_states()
    assert "RUNNING" not in states and "FAIL" not in states and states.count("PRUNED") == 1
    resumed = mubench(*command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{3 - states.count('COMPLETE')} trials run now" in resumed.stderr
    row = next(line.split() for line in resumed.stdout.splitlines() if line.startswith(METHOD))
    assert row[1:3] == ["3", "0"]  # trials, failed
