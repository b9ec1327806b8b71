"""Forgetting scenarios: class-wise and identity-wise splits, their scoring, their errors, and the board's picture."""
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from test_metrics import scores_of
from mubench.scores import metrics
from mubench.data.splits import Preprocess, Split, Splits
from mubench.datasets.digits import Digits
from mubench.core.errors import MubenchError
from mubench.boards.leaderboard import summarise
from mubench.core.losses import TaskKind
from mubench.data.scenarios import apply_scenario, identity_forget_mask, parse_scenario


@pytest.fixture(scope="module")
def digits():
    return Digits().load()


def test_class_wise_forget_is_exactly_that_class_of_the_training_set(digits):
    split = apply_scenario(digits, parse_scenario("class:3"))
    training = {i: int(y) for s in (digits.retain, digits.forget) for i, y in zip(s.ids, s.labels)}
    assert set(split.forget.ids) == {i for i, y in training.items() if y == 3}
    assert set(split.retain.ids) == {i for i, y in training.items() if y != 3}
    assert (split.retain.labels != 3).all() and (split.forget.labels == 3).all()
    for role in ("val", "test"):
        assert split.role(role).ids == digits.role(role).ids
    assert split.forgotten_classes == (3,) and split.scenario == "class:3"
    again = apply_scenario(Digits().load(), parse_scenario("class:3"))
    assert again.split_hash == split.split_hash != digits.split_hash
    assert apply_scenario(digits, parse_scenario("class:4")).split_hash != split.split_hash


def people_splits() -> Splits:
    """12 people with 1–4 images each across retain and forget; val and test of other people."""
    counts = [1, 2, 3, 4] * 3
    ids, people = [], {}
    for person, count in enumerate(counts):
        for k in range(count):
            ids.append(f"p{person}-{k}")
            people[ids[-1]] = f"person{person}"
    n = len(ids)
    split = Split(torch.zeros(n, 3, 4, 4, dtype=torch.uint8), torch.zeros(n, dtype=torch.long), tuple(ids))
    retain, forget = split.subset(torch.arange(0, n - 6)), split.subset(torch.arange(n - 6, n))
    other = Split(torch.zeros(4, 3, 4, 4, dtype=torch.uint8), torch.zeros(4, dtype=torch.long),
                  tuple(f"o{i}" for i in range(4)))
    return Splits("people", TaskKind.MULTICLASS, 2, Preprocess((0.5,) * 3, (0.5,) * 3), "h", retain, forget, other,
                  other, identities=people)


def test_identity_forget_holds_every_image_of_its_people_and_no_other():
    splits = people_splits()
    split = apply_scenario(splits, parse_scenario("identity"))
    forgotten = {splits.identities[i] for i in split.forget.ids}
    kept = {splits.identities[i] for i in split.retain.ids}
    assert not forgotten & kept
    assert set(split.forget.ids) == {i for i, p in splits.identities.items() if p in forgotten}
    assert len(split.forget) >= len(splits.forget)  # about the size of the task's own forget set
    assert len(split.forget) - len(splits.forget) < 4  # stops at the first person that reaches it
    assert apply_scenario(people_splits(), parse_scenario("identity")).forget.ids == split.forget.ids



@pytest.mark.parametrize("target, people", [(3, 2), (4, 2), (5, 3)])
def test_identity_forget_adds_people_until_the_target_is_reached_and_no_further(target, people):
    """Everyone has two images: a target of 3 or 4 takes two people, 5 takes three (no one past the target)."""
    ids = tuple(f"i{k}" for k in range(20))
    pool = Split(torch.zeros(20, 3, 2, 2, dtype=torch.uint8), torch.zeros(20, dtype=torch.long), ids)
    mask = identity_forget_mask(pool, {i: f"person{k // 2}" for k, i in enumerate(ids)}, target)
    assert mask.sum() == 2 * people


def test_identity_forget_always_leaves_someone_in_retain():
    ids = ("a0", "a1", "b0")
    pool = Split(torch.zeros(3, 3, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), ids)
    mask = identity_forget_mask(pool, {"a0": "a", "a1": "a", "b0": "b"}, target=10)
    assert mask.sum() in (1, 2) and not mask.all()


def test_a_derived_split_names_the_split_it_was_cut_from():
    splits = people_splits()
    notes = apply_scenario(splits, parse_scenario("identity")).notes
    assert (notes["scenario"], notes["scenario_of"]) == ("identity", splits.split_hash)
    assert splits.shrunk({"retain": 3, "test": 2}).notes["shrunk_from"] == splits.split_hash


@pytest.mark.parametrize("args, fragment", [
    (("--scenario", "identity"), "'digits' has none"),
    (("--scenario", "class:10"), "has classes 0–9"),
    (("--scenario", "class:x"), "task 'digits' has no class 'x'; it names no classes, so give the class's index"),
    (("--scenario", "class:"), "is not a scenario"),
    (("--scenario", "random,random"), "twice"),
])
def test_a_scenario_the_task_cannot_have_is_one_sentence_before_any_work(tmp_path, cli, args, fragment):
    result = cli("run", "--out", str(tmp_path / "out"), *args)
    assert result.exit_code == 2 and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "mlflow.db").exists()


def test_class_wise_on_a_multi_label_task_is_refused():
    from mubench.data.scenarios import check_scenario
    with pytest.raises(MubenchError, match="multi-label"):
        check_scenario(parse_scenario("class:0"), "mucac-multi", TaskKind.MULTILABEL, 3, True)


class PixelClassifier(nn.Module):
    """Predicts the class written in pixel 0 with a confidence written in pixel 1 (3 classes)."""

    def forward(self, x):
        predicted = x[:, 0, 0, 0].round().long()
        logits = torch.zeros(len(x), 3)
        logits[torch.arange(len(x)), predicted] = x[:, 0, 0, 1] * 10
        return logits


def pixel_split(labels, predicted, confidence) -> Split:
    n = len(labels)
    images = torch.zeros(n, 1, 1, 2)
    images[:, 0, 0, 0] = torch.tensor(predicted, dtype=torch.float32) * 255
    images[:, 0, 0, 1] = torch.tensor(confidence, dtype=torch.float32) * 255
    return Split(images, torch.tensor(labels), tuple(map(str, range(n))))


def test_class_wise_scores_utility_on_the_other_classes_and_attacks_with_the_forgotten_one():
    # test: 10 images of class 2 (forgotten; 3 still predicted right), 20 of classes 0/1 (15 right)
    test_labels = [2] * 10 + [0] * 10 + [1] * 10
    test_pred = [2] * 3 + [0] * 7 + [0] * 8 + [1] * 2 + [1] * 7 + [0] * 3
    test = pixel_split(test_labels, test_pred, [0.5] * 30)
    forget = pixel_split([2] * 16, [2] * 16, [1.0] * 16)
    retain = pixel_split([0, 1] * 5, [0, 1] * 5, [1.0] * 10)
    splits = Splits("px", TaskKind.MULTICLASS, 3, Preprocess((0.0,), (1.0,)), "h", retain, forget, retain, test,
                    forgotten_classes=(2,))
    losses = {}
    scores = scores_of(PixelClassifier(), splits, losses)
    assert scores["test_acc"] == pytest.approx(15 / 20)
    assert scores["forgotten_test_acc"] == pytest.approx(3 / 10)
    assert scores["mia_nonmembers"] == scores["mia_members"] == 10  # the forgotten class's 10 test images
    expected = metrics.mia_scores(losses["forget"], losses["test"][:10])
    assert scores["mia"] == expected.mia


def test_gap_to_retrain_and_paired_delta_are_per_seed():
    rows = []
    values = {"retrain": [(0.0, 0.9, 0.8, 0.5, 0.70), (0.1, 0.9, 0.8, 0.5, 0.72)],
              "m": [(0.4, 1.0, 0.8, 0.6, 0.60), (0.1, 0.7, 0.6, 0.5, 0.68)]}
    for label, seeds in values.items():
        for seed, (forget, retain, test, mia, nomus) in enumerate(seeds):
            rows.append({"status": "FINISHED", "label": label, "method": label, "seed": str(seed), "base": label,
                         "variant": "", "forget_acc": forget, "retain_acc": retain, "test_acc": test, "mia": mia,
                         "nomus": nomus})
    table = summarise(pd.DataFrame(rows)).set_index("label")
    # seed 0: |.4|+|.1|+0+|.1| = .6 → .15; seed 1: 0+|.2|+|.2|+0 = .4 → .10; mean .125
    assert table.loc["m", "gap"] == pytest.approx(0.125)
    assert table.loc["m", "delta_nomus"] == pytest.approx(((0.60 - 0.70) + (0.68 - 0.72)) / 2)
    assert table.loc["retrain", "gap"] == 0 and table.loc["retrain", "delta_nomus"] == 0


def test_a_run_draws_the_board_picture_and_logs_it(smoke_run):
    out, _ = smoke_run
    picture = out / "plots" / "digits-resnet18-smoke-scatter.png"
    assert picture.stat().st_size > 10_000
    with sqlite3.connect(out / "mlflow.db") as db:
        parent = db.execute("select r.artifact_uri from runs r join tags t on t.run_uuid = r.run_uuid "
                            "where t.key = 'mubench.kind' and t.value = 'invocation'").fetchone()[0]
    assert (Path(parent.removeprefix("file://")) / "plots" / picture.name).is_file()


def test_a_scenario_the_task_cannot_have_is_refused_before_its_data_is_read(tmp_path, cli, monkeypatch):
    from mubench.data.tasks import TASKS
    read = []
    monkeypatch.setattr(TASKS.get("digits"), "load", lambda self, root: read.append(root))
    result = cli("run", "--out", str(tmp_path / "out"), "--scenario", "class:10")
    assert result.exit_code == 2 and "has classes 0–9" in result.stderr and read == []


def test_the_smoke_preset_keeps_the_sizes_the_readme_gives():
    """README: "--preset smoke ... 240 retain, 60 forget/val/test images"."""
    from mubench.data.tasks import load_task
    splits = load_task("digits", "smoke", None)[1]
    assert [len(splits.role(r)) for r in ("retain", "forget", "val", "test")] == [240, 60, 60, 60]


def test_a_parsed_scenario_is_immutable_and_hashable():
    import dataclasses
    scenario = parse_scenario("class:3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        scenario.label = 4
    assert hash(scenario) == hash(parse_scenario("class:3"))


# Class names ---------------------------------------------------------------------------------------------------

def test_a_class_is_named_by_its_index_or_its_label_name():
    from mubench.data.scenarios import Scenario, resolve_class
    emotions = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert parse_scenario("class:happy") == Scenario("class", name="happy")
    assert resolve_class(parse_scenario("class:happy"), "fer2013", emotions) == parse_scenario("class:3")
    assert resolve_class(parse_scenario("class:Happy"), "fer2013", emotions).text == "class:3"  # case, when unique
    assert resolve_class(parse_scenario("class:3"), "fer2013", emotions).text == "class:3"
    with pytest.raises(MubenchError, match="has no class 'hapy'; its classes are angry, disgust, fear, happy, sad, "
                                           "surprise, neutral \\(or their indices 0–6\\)"):
        resolve_class(parse_scenario("class:hapy"), "fer2013", emotions)
    with pytest.raises(MubenchError, match="'digits' has no class 'three'; it names no classes"):
        resolve_class(parse_scenario("class:three"), "digits", ())


def test_a_named_class_is_checked_before_any_work_where_the_task_declares_its_names():
    from mubench.data.scenarios import check_scenario
    from mubench.data.tasks import TASKS
    fer = TASKS.get("fer2013")
    check_scenario(parse_scenario("class:surprise"), "fer2013", fer.kind, fer.num_outputs, False, fer.label_names)
    with pytest.raises(MubenchError, match="no class 'joy'"):
        check_scenario(parse_scenario("class:joy"), "fer2013", fer.kind, fer.num_outputs, False, fer.label_names)
    check_scenario(parse_scenario("class:joy"), "imagefolder", TaskKind.MULTICLASS, 0, False, None)  # checked at load


def test_an_image_folders_class_folder_names_the_same_scenario_as_its_index(tmp_path, monkeypatch):
    import fixtures_faces as ff
    from mubench.data.tasks import load_task
    monkeypatch.setenv("MUBENCH_CACHE", str(tmp_path / "cache"))
    root = ff.make_imagefolder(tmp_path / "folder", classes=3, per_class=12)
    by_name = load_task("imagefolder", "default", root, "class:class_1")[1]
    by_index = load_task("imagefolder", "default", root, "class:1")[1]
    assert by_name.scenario == by_index.scenario == "class:1" and by_name.forgotten_classes == (1,)
    assert by_name.split_hash == by_index.split_hash and by_name.forget.ids == by_index.forget.ids
    assert set(by_name.forget.labels.tolist()) == {1} and 1 not in by_name.retain.labels.tolist()
    with pytest.raises(MubenchError, match="its classes are class_0, class_1, class_2"):
        load_task("imagefolder", "default", root, "class:class_9")
