"""The harness around the methods, read through its public seams: the configuration a method receives on a task,
the monitor it watches in a class-wise cell, what `evaluate` and the training loader feed a model, the time a cell
charges, and what goes into a cell's key. Each test fails on a one-line slip that would change a published number or
reuse a stale cell."""
from __future__ import annotations

import dataclasses

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from mubench.harness import keys
from mubench.run import cell_keys

from mubench.scores import metrics
from mubench.unlearn.api import METHODS
from mubench.attacks.base import resolve_attacks
from mubench.train.cache import ModelCache
from mubench.run.cell import run_cell, run_logged_cell
from mubench.core.config import param_text, stable_hash
from mubench.unlearn.protocol import make_monitor
from mubench.data.splits import BatchLoader, Preprocess, Split
from mubench.core.losses import TaskKind, task_loss
from mubench.harness.plan import CellJob, MethodSpec, RunPlan, RunSummary, SeedSetup, method_specs
from mubench.harness.references import References
from mubench.data.scenarios import apply_scenario, parse_scenario
from mubench.kits.method_kit import TOY_RECIPE, toy_cell, toy_model, toy_splits
from mubench.core.tracking import open_store
from mubench.train.training import train_reference
from mubench.data.tasks import Recipe
from test_keys import edited, fresh_versions  # noqa: F401 (a fixture)

CPU = torch.device("cpu")


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_store(uri, tmp_path)
    return RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri=uri, cache_dir=tmp_path,
                   quiet=True)


def references_of(cell, retrain_seconds: float = 1.0) -> References:
    return References(cell.original, cell.retrained, {"key": "o"}, {"train_seconds": retrain_seconds})


def spy_on(monkeypatch, name: str, probe):
    """Replace method `name`'s unlearn with `probe(self, model, data, ctx)`, which returns the model."""
    seen = []

    def unlearn(self, model, data, ctx):
        seen.append(probe(self, model, data, ctx))
        return model
    monkeypatch.setattr(METHODS.get(name), "unlearn", unlearn)
    return seen


# Task presets ----------------------------------------------------------------------------------------------------

def test_a_tasks_presets_reach_the_method_and_the_logged_params_and_set_overrides_them(store, monkeypatch):
    cell = toy_cell()
    cell = dataclasses.replace(cell, splits=dataclasses.replace(cell.splits, task="digits"))  # a registered task
    task = "digits"
    monkeypatch.setattr(METHODS.get("finetune"), "task_defaults", {task: {"lr": 0.0123, "epochs": 7},
                                                                  "other-task": {"lr": 9.0}})
    configs = spy_on(monkeypatch, "finetune", lambda self, model, data, ctx: self.config)
    specs = [method_specs(["finetune"], [], references=False)[0],
             method_specs(["finetune"], ["finetune.epochs=3"], references=False)[0]]
    summary = RunSummary("")
    with mlflow.start_run() as parent:
        summary.parent_run_id = parent.info.run_id
        for spec in specs:
            key = cell_keys.cell_key(SeedSetup(store, cell.splits, TOY_RECIPE, "toy", 0), spec,
                                     spec.config_for(cell.splits.task), 1)
            run_logged_cell(SeedSetup(store, cell.splits, TOY_RECIPE, "toy", 0), references_of(cell),
                            CellJob.of(spec, key, cell.splits.task, "toy", 0), summary)
    assert summary.failures == []
    assert (configs[0].lr, configs[0].epochs) == (0.0123, 7)  # the task's presets, not the class defaults
    assert (configs[1].lr, configs[1].epochs) == (0.0123, 3)  # --set wins over a preset
    runs = MlflowClient().search_runs([mlflow.get_experiment_by_name("mubench").experiment_id],
                                      "tags.`mubench.kind` = 'cell'", order_by=["attributes.start_time"])
    logged = [r.data.params for r in runs]
    assert [(p["cfg.lr"], p["cfg.epochs"]) for p in logged] == [("0.0123", "7"), ("0.0123", "3")]
    assert runs[0].data.tags["mubench.config_hash"] == keys.config_hash(specs[0].config_for(task))
    monkeypatch.setattr(METHODS.get("finetune"), "task_defaults", {})
    key_without = cell_keys.cell_key(SeedSetup(store, cell.splits, TOY_RECIPE, "toy", 0), specs[0],
                                     specs[0].config_for(cell.splits.task), 1)
    assert runs[0].data.tags["mubench.cell_key"] != key_without  # a changed preset reruns the cell


def test_a_cells_run_records_what_it_ran_on_and_is_named_after_it(store):
    cell = toy_cell()
    splits = dataclasses.replace(cell.splits, task="digits", notes={"task_options": {"size": "32"}})
    spec = MethodSpec("original")
    with mlflow.start_run() as parent:
        pass  # a worker of another process: the invocation's run is not the active one there
    run_logged_cell(SeedSetup(store, splits, TOY_RECIPE, "toy", 3), references_of(cell),
                    CellJob.of(spec, "k", splits.task, "toy", 3), RunSummary(parent.info.run_id))
    (run,) = MlflowClient().search_runs([mlflow.get_experiment_by_name("mubench").experiment_id],
                                        "tags.`mubench.kind` = 'cell'")
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert {k: run.data.tags[f"mubench.{k}"] for k in ("task", "scenario", "backbone", "seed", "method", "label",
                                                        "base", "variant")} == {
        "task": "digits", "scenario": "random", "backbone": "toy", "seed": "3", "method": "original",
        "label": "original", "base": "original", "variant": ""}
    params, tags = run.data.params, run.data.tags
    assert (params["task"], params["split_hash"], params["backbone"], params["seed"]) == ("digits", "toy", "toy", "3")
    assert params["task.size"] == "32"
    assert params["recipe.epochs"] == str(TOY_RECIPE.epochs)
    assert tags["mubench.recipe_hash"] == stable_hash(param_text(TOY_RECIPE))
    assert tags["mubench.recipe_hash"] != stable_hash(param_text(dataclasses.replace(TOY_RECIPE, epochs=1)))
    assert run.info.run_name == "original/digits/toy/s3"


# The monitor a method watches ------------------------------------------------------------------------------------

def class_wise_toy(label: int = 1):
    cell = toy_cell()
    splits = apply_scenario(cell.splits, parse_scenario(f"class:{label}"))
    return cell, splits


def test_the_monitor_of_a_class_wise_cell_reads_the_forgotten_classes_held_out_images(store, monkeypatch):
    cell, splits = class_wise_toy(1)
    readings = spy_on(monkeypatch, "original", lambda self, model, data, ctx: ctx.monitor(model))
    with mlflow.start_run():
        run_cell(SeedSetup(store, splits, TOY_RECIPE, "toy", 0), references_of(cell), MethodSpec("original"),
                 MethodSpec("original").config_for(splits.task))
    reading = readings[0]
    # by hand: members are the forget set (all of class 1), non-members val's images of class 1, accuracy the rest
    forget_losses, _ = metrics.evaluate(cell.original, splits.forget, splits.kind, splits.preprocess, CPU)
    val_losses, val_right = metrics.evaluate(cell.original, splits.val, splits.kind, splits.preprocess, CPU)
    of_class = splits.val.labels.numpy() == 1
    assert 0 < of_class.sum() < len(of_class)
    expected = metrics.mia_scores(forget_losses, val_losses[of_class]).mia
    assert reading.mia == pytest.approx(expected)
    assert reading.forgetting_score == pytest.approx(2 * abs(expected - 0.5))
    assert reading.val_accuracy == pytest.approx(val_right[~of_class].mean())
    everything = make_monitor(splits.forget, splits.val, splits.kind, splits.preprocess, CPU)(cell.original)
    assert everything.val_accuracy != pytest.approx(reading.val_accuracy)  # the wrong monitor reads otherwise


def test_tuning_reads_the_same_monitor_as_the_cell(store, monkeypatch):
    from mubench.run.tune import unlearn_on_val, val_readings
    cell, splits = class_wise_toy(2)
    readings = spy_on(monkeypatch, "original", lambda self, model, data, ctx: ctx.monitor(model))
    with mlflow.start_run():
        run_cell(SeedSetup(store, splits, TOY_RECIPE, "toy", 0), references_of(cell), MethodSpec("original"),
                 MethodSpec("original").config_for(splits.task))
        model, seconds = unlearn_on_val(store, "original", METHODS.get("original").Config(), splits, TOY_RECIPE, 0,
                                        references_of(cell))
    tuned = val_readings(model, splits, store.device)
    assert readings[0] == readings[1]
    assert (tuned.val_fs, tuned.val_mia, tuned.val_acc) == (readings[0].forgetting_score, readings[0].mia,
                                                          readings[0].val_accuracy)



def test_a_tuning_trial_unlearns_quietly_even_when_the_run_is_not(store, monkeypatch):
    from mubench.run.tune import unlearn_on_val
    cell, splits = class_wise_toy(2)
    quiet = spy_on(monkeypatch, "original", lambda self, model, data, ctx: ctx.quiet)
    with mlflow.start_run():
        unlearn_on_val(dataclasses.replace(store, quiet=False), "original", METHODS.get("original").Config(), splits,
                       TOY_RECIPE, 0, references_of(cell))
    assert quiet == [True]


# What a model is fed ---------------------------------------------------------------------------------------------

def test_evaluate_normalises_without_augmenting_in_eval_mode():
    images = torch.randint(0, 256, (20, 3, 12, 12), dtype=torch.uint8)
    labels = torch.arange(20) % 4
    split = Split(images, labels, tuple(str(i) for i in range(20)))
    preprocess = Preprocess((0.2, 0.4, 0.6), (0.5, 0.25, 0.1), augment="crop-flip")
    model = toy_model(4)
    model.train()
    losses, right = metrics.evaluate(model, split, TaskKind.MULTICLASS, preprocess, CPU, batch_size=7)
    assert not model.training
    x = (images.float() / 255 - torch.tensor((0.2, 0.4, 0.6)).view(1, 3, 1, 1)) / torch.tensor(
        (0.5, 0.25, 0.1)).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(x)
    assert np.allclose(losses, task_loss(logits, labels, TaskKind.MULTICLASS, reduction="none").numpy(), atol=1e-5)
    assert np.array_equal(right, (logits.argmax(1) == labels).float().numpy())


@pytest.mark.parametrize("augment", ["flip", "crop-flip"])
def test_augmented_batches_are_normalised_too(augment):
    """A constant image is its own flip and crop, so an augmented batch of them is the normalised constant."""
    values = torch.tensor([0, 51, 255], dtype=torch.uint8)
    images = values.view(3, 1, 1, 1).expand(3, 3, 8, 8).contiguous()
    preprocess = Preprocess((0.5, 0.4, 0.3), (0.2, 0.2, 0.25), augment=augment)
    loader = BatchLoader(Split(images, torch.arange(3), ("a", "b", "c")), preprocess, 3, augment=True)
    (x, _), = list(loader)
    expected = (values.float().view(3, 1, 1, 1) / 255 - torch.tensor((0.5, 0.4, 0.3)).view(1, 3, 1, 1)) \
        / torch.tensor((0.2, 0.2, 0.25)).view(1, 3, 1, 1)
    assert torch.allclose(x, expected.expand(3, 3, 8, 8), atol=1e-6)


def test_a_reference_trains_on_augmented_batches_exactly_when_its_recipe_says_so():
    splits = toy_splits()
    flipping = dataclasses.replace(splits.preprocess, augment="flip")
    recipe = Recipe(epochs=1, batch_size=16, lr=0.05)
    weights = {}
    for name, preprocess, augment in (("plain", splits.preprocess, False), ("flip-off", flipping, False),
                                      ("flip-on", flipping, True)):
        model = toy_model(4, seed=3)
        train_reference(model, splits.retain, splits.kind, preprocess, dataclasses.replace(recipe, augment=augment),
                        CPU, 0)
        weights[name] = model.state_dict()
    same = all(torch.equal(weights["plain"][k], weights["flip-off"][k]) for k in weights["plain"])
    moved = any(not torch.equal(weights["plain"][k], weights["flip-on"][k]) for k in weights["plain"])
    assert same and moved


# Time charged ----------------------------------------------------------------------------------------------------

def test_retrain_is_charged_its_training_time_and_the_original_nothing(store):
    cell = toy_cell()
    refs = references_of(cell, retrain_seconds=123.0)
    with mlflow.start_run():
        retrain = run_cell(SeedSetup(store, cell.splits, TOY_RECIPE, "toy", 0), refs, MethodSpec("retrain"),
                           MethodSpec("retrain").config_for(cell.splits.task))
        original = run_cell(SeedSetup(store, cell.splits, TOY_RECIPE, "toy", 0), refs, MethodSpec("original"),
                            MethodSpec("original").config_for(cell.splits.task))
    assert 123.0 <= retrain["unlearn_seconds"] < 124.0
    assert retrain["retrain_seconds"] == original["retrain_seconds"] == 123.0
    assert retrain["time_ratio"] == pytest.approx(retrain["unlearn_seconds"] / 123.0)
    assert 0 <= original["unlearn_seconds"] < 1.0
    assert original["time_ratio"] == pytest.approx(original["unlearn_seconds"] / 123.0)


# A cell's key ----------------------------------------------------------------------------------------------------

def test_the_numeric_libraries_versions_are_the_installed_ones():
    import numpy
    import sklearn
    import torchvision
    versions = keys.library_versions()
    assert versions["torch"] == torch.__version__.split("+")[0]  # a local build tag (+cu130) is not in the metadata
    assert versions["torchvision"] == torchvision.__version__.split("+")[0]
    assert versions["numpy"] == numpy.__version__
    assert versions["scikit-learn"] == sklearn.__version__
    assert versions["POT"] != "absent"


def digits_like() -> "Splits":
    """Toy splits under a registered task's name (a key names the task's module)."""
    return dataclasses.replace(toy_splits(), task="digits")


def key_of(plan, spec=None, splits=None, recipe=TOY_RECIPE, backbone="toy", seed=0, threads=1):
    spec, splits = spec or MethodSpec("finetune"), splits or digits_like()
    return cell_keys.cell_key(SeedSetup(plan, splits, recipe, backbone, seed), spec, spec.config_for(splits.task),
                              threads)


def test_a_new_torch_release_changes_every_key(store, monkeypatch, fresh_versions):
    splits = digits_like()
    cell_before = key_of(store)
    reference_before = keys.reference_fields(store, splits, TOY_RECIPE, "toy", 0, "original")["code"]
    shadow_before = keys.shadow_fields(store, splits, TOY_RECIPE, "toy", 0, 3)["code"]
    real = keys.version
    monkeypatch.setattr(keys, "version", lambda name: "99.0" if name == "torch" else real(name))
    keys.code_version.cache_clear()
    assert key_of(store) != cell_before
    assert keys.reference_fields(store, splits, TOY_RECIPE, "toy", 0, "original")["code"] != reference_before
    assert keys.shadow_fields(store, splits, TOY_RECIPE, "toy", 0, 3)["code"] != shadow_before


def changed(change: str, plan, tmp_path) -> tuple:
    """(plan, cell_key arguments) with one thing changed from the base cell."""
    args = dict(spec=MethodSpec("finetune"), splits=digits_like(), recipe=TOY_RECIPE, backbone="toy", seed=0, threads=1)
    if change in ("threads", "seed", "backbone"):
        args[change] = {"threads": 2, "seed": 1, "backbone": "other"}[change]
    elif change == "split":
        args["splits"] = dataclasses.replace(args["splits"], split_hash="another")
    elif change == "recipe":
        args["recipe"] = dataclasses.replace(TOY_RECIPE, epochs=TOY_RECIPE.epochs + 1)
    elif change == "config":
        args["spec"] = MethodSpec("finetune", (("lr", 0.5),))
    elif change == "task":
        args["splits"] = dataclasses.replace(args["splits"], task="mufac")
    elif change == "pretrained":
        (tmp_path / "v.pt").write_bytes(b"two")
        plan = dataclasses.replace(plan, pretrained=tmp_path / "v.pt")
    elif change:
        plan = dataclasses.replace(plan, **{"device": {"device": torch.device("cuda")}, "head": {"head": "other"},
                                            "preset": {"preset": "other"}, "attack": {"attacks": ()},
                                            "ulira": {"attacks": ("lira", "ulira")},
                                            "shadows": {"shadows": 32}}[change])
    return plan, args


@pytest.mark.parametrize("change", ["device", "threads", "seed", "backbone", "head", "preset", "split", "recipe",
                                    "config", "pretrained", "attack", "ulira", "shadows", "task"])
def test_everything_that_can_change_a_cells_numbers_changes_its_key(store, tmp_path, change):
    (tmp_path / "w.pt").write_bytes(b"one")
    base = dataclasses.replace(store, pretrained=tmp_path / "w.pt", attacks=("lira",), shadows=16)
    assert key_of(*_unpack(changed(change, base, tmp_path))) != key_of(*_unpack(changed("", base, tmp_path)))
    assert key_of(*_unpack(changed("", base, tmp_path))) == key_of(*_unpack(changed("", base, tmp_path)))


@pytest.mark.parametrize("change", ["task", "split", "backbone", "head", "pretrained", "recipe", "seed", "role"])
def test_everything_that_can_change_a_references_weights_changes_its_cache_key(store, tmp_path, change):
    (tmp_path / "w.pt").write_bytes(b"one")
    (tmp_path / "v.pt").write_bytes(b"two")
    base = dict(plan=dataclasses.replace(store, pretrained=tmp_path / "w.pt"), splits=digits_like(),
                recipe=TOY_RECIPE, backbone="toy", seed=0, role="original")
    other = dict(base, **{
        "task": {"splits": dataclasses.replace(digits_like(), task="mufac")},
        "split": {"splits": dataclasses.replace(digits_like(), split_hash="another")},
        "backbone": {"backbone": "other"}, "head": {"plan": dataclasses.replace(base["plan"], head="other")},
        "pretrained": {"plan": dataclasses.replace(base["plan"], pretrained=tmp_path / "v.pt")},
        "recipe": {"recipe": dataclasses.replace(TOY_RECIPE, epochs=TOY_RECIPE.epochs + 1)},
        "seed": {"seed": 1}, "role": {"role": "retrain"}}[change])
    key = ModelCache(tmp_path).key
    assert key(keys.reference_fields(**other)) != key(keys.reference_fields(**base))
    assert key(keys.reference_fields(**base)) == key(keys.reference_fields(**dict(base)))


def _unpack(plan_and_args):
    plan, args = plan_and_args
    return plan, args["spec"], args["splits"], args["recipe"], args["backbone"], args["seed"], args["threads"]


def test_references_trained_before_the_seeding_rule_are_never_reused(store, monkeypatch):
    splits = digits_like()
    cell = key_of(store)
    reference = keys.reference_fields(store, splits, TOY_RECIPE, "toy", 0, "original")
    monkeypatch.setattr(keys, "REFERENCE_INIT", "unseeded-init")
    assert key_of(store) != cell
    assert keys.reference_fields(store, splits, TOY_RECIPE, "toy", 0, "original") != reference


def test_an_ablation_row_is_its_own_cell_even_where_its_config_equals_another_rows(store):
    changes = tuple(METHODS.get("dlfd").ablations["no-ot"].items())
    assert key_of(store, MethodSpec("dlfd", changes, "no-ot")) != key_of(store, MethodSpec("dlfd", changes))


@pytest.mark.parametrize("module, changes", [
    ("mubench.attacks.lira", {"lira", "ulira"}), ("mubench.attacks.shadows", {"lira", "ulira"}),
    ("mubench.attacks.ulira", {"ulira"}), ("mubench.attacks.population", {"", "lira", "ulira"})])
def test_an_edit_of_the_attacks_code_reruns_exactly_the_cells_it_scores(store, monkeypatch, fresh_versions, module,
                                                                        changes):
    plans = {attack: dataclasses.replace(store, attacks=resolve_attacks(attack)) for attack in ("", "lira", "ulira")}
    before = {attack: key_of(plan) for attack, plan in plans.items()}
    monkeypatch.setattr(keys, "module_source", edited(module))
    keys.code_version.cache_clear()
    after = {attack: key_of(plan) for attack, plan in plans.items()}
    assert {attack for attack in plans if after[attack] != before[attack]} == changes


# The augmentations' geometry and colour --------------------------------------------------------------------------

def test_crop_flip_shifts_by_up_to_an_eighth_of_the_side_each_way():
    """A horizontal ramp, cropped after reflect padding by h // 8 = 2 pixels: its (unflipped) columns shift by every
    offset in −2..2 and no more; flips reverse it."""
    ramp = torch.arange(16, dtype=torch.uint8).mul(10).view(1, 1, 1, 16).expand(400, 3, 16, 16).contiguous()
    preprocess = Preprocess((0.0,) * 3, (1 / 255,) * 3, augment="crop-flip")  # back to pixel values
    x = preprocess.to_input(ramp, augment=True, generator=torch.Generator().manual_seed(0))
    middle = x[:, 0, 8, 8]  # a pixel away from the reflected border, so its value tells the shift
    forward = x[:, 0, 8, 9] > x[:, 0, 8, 8]
    shifts = ((middle[forward] / 10).round() - 8).int().tolist()
    assert sorted(set(shifts)) == [-2, -1, 0, 1, 2]
    assert 0.3 < forward.float().mean() < 0.7  # about half are flipped


def test_crop_flip_still_shifts_one_pixel_on_images_under_sixteen_pixels():
    ramp = torch.arange(8, dtype=torch.uint8).mul(20).view(1, 1, 1, 8).expand(300, 3, 1, 8).expand(300, 3, 8, 8)
    preprocess = Preprocess((0.0,) * 3, (1 / 255,) * 3, augment="crop-flip")
    x = preprocess.to_input(ramp.contiguous(), augment=True, generator=torch.Generator().manual_seed(0))
    forward = x[:, 0, 4, 5] > x[:, 0, 4, 4]
    shifts = ((x[:, 0, 4, 4][forward] / 20).round() - 4).int().tolist()
    assert sorted(set(shifts)) == [-1, 0, 1]  # max(1, 8 // 8) = 1


def test_grey_is_torchvisions_luma_and_the_warp_rotates_counter_clockwise():
    import torchvision.transforms.functional as F

    from mubench.data import splits as data
    x = torch.rand(4, 3, 10, 12, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(data._grey(x), F.rgb_to_grayscale(x), atol=1e-3)
    square = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    one, zero = torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    assert torch.allclose(data._warp(square, one, zero, zero), square, atol=1e-6)
    assert torch.allclose(data._warp(square, one, zero, 90 * one), torch.rot90(square, 1, dims=(-2, -1)), atol=1e-5)


def test_an_edit_of_the_shadows_code_retrains_the_shadows_and_not_the_references(store, monkeypatch, fresh_versions):
    splits = digits_like()
    before = (keys.reference_fields(store, splits, TOY_RECIPE, "toy", 0, "original"),
              keys.shadow_fields(store, splits, TOY_RECIPE, "toy", 0, 1))
    monkeypatch.setattr(keys, "module_source", edited("mubench.attacks.shadows"))
    keys.code_version.cache_clear()
    after = (keys.reference_fields(store, splits, TOY_RECIPE, "toy", 0, "original"),
             keys.shadow_fields(store, splits, TOY_RECIPE, "toy", 0, 1))
    assert after[0] == before[0] and after[1]["code"] != before[1]["code"]
    assert after[1]["role"] == "shadow-1" and keys.shadow_fields(
        store, splits, TOY_RECIPE, "toy", 0, 1, "model")["role"] == "shadow-1-model"


def test_an_ablation_variant_keeps_the_set_overrides_of_its_method():
    specs = method_specs(["dlfd"], ["dlfd.lr=0.5"], ablate=True, references=False)
    assert [s.row for s in specs][:2] == ["dlfd[lr=0.5]", "dlfd[lr=0.5,no-ot]"]
    variant = specs[1]
    config = variant.config_for("digits")
    assert config.lr == 0.5 and config.use_ot is False and variant.base == "dlfd[lr=0.5]"


@pytest.mark.parametrize("batch_size", [0, 5])
def test_a_loop_methods_default_batches_are_augmented_shuffled_retain_from_the_cells_seed(batch_size):
    cell = dataclasses.replace(toy_cell(), seed=3)  # not the loader's default seed
    data = dataclasses.replace(cell.data, preprocess=dataclasses.replace(cell.data.preprocess, augment="crop-flip"))
    finetune = METHODS.get("finetune")
    method = finetune(dataclasses.replace(finetune.Config(), batch_size=batch_size))
    loader = method.batches(data, cell.context())
    assert loader.split is data.retain and loader.shuffle and loader.augment
    assert loader.batch_size == (batch_size or data.batch_size)
    same = BatchLoader(data.retain, data.preprocess, loader.batch_size, shuffle=True, augment=True, seed=cell.seed)
    other = BatchLoader(data.retain, data.preprocess, loader.batch_size, shuffle=True, augment=True,
                        seed=cell.seed + 1)
    (x, y), (x_same, y_same), (x_other, _) = next(iter(loader)), next(iter(same)), next(iter(other))
    assert torch.equal(x, x_same) and torch.equal(y, y_same) and not torch.equal(x, x_other)


def test_the_affine_augmentation_draws_torchvisions_ranges(monkeypatch):
    """RandomAffine(0, shear=10, scale=(0.8, 1.2)) then RandomRotation(10): each drawn uniformly per image."""
    from mubench.data import splits as data
    drawn = {}
    monkeypatch.setattr(data, "_warp", lambda x, scale, shear, angle: drawn.update(scale=scale, shear=shear,
                                                                                    angle=angle) or x)
    data._affine(torch.zeros(2000, 3, 4, 4), torch.Generator().manual_seed(0))
    for name, (low, high) in {"scale": (0.8, 1.2), "shear": (-10.0, 10.0), "angle": (-10.0, 10.0)}.items():
        values = drawn[name]
        assert low <= float(values.min()) < low + 0.02 and high - 0.02 < float(values.max()) <= high, name


def test_colour_jitter_leaves_a_grey_image_grey_and_moves_it_by_brightness_only():
    """Contrast blends with the image's mean grey and saturation with its own grey: a uniform grey image keeps its
    value up to the brightness factor, uniform in [0.8, 1.2]."""
    from mubench.data import splits as data
    x = torch.full((500, 3, 4, 4), 0.25)
    out = data._color_jitter(x, torch.Generator().manual_seed(0))
    per_image = out.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-6)  # still uniform grey
    assert 0.2 - 1e-6 <= float(per_image.min()) < 0.21 and 0.29 < float(per_image.max()) <= 0.3 + 1e-6
