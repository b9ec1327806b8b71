"""The attack registry (mubench.attacks.base): `--attack` names, what each registered attack declares, and how a run's
attacks reach its cells' keys, tags and scores."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from mubench.run import cell_keys
from mubench.kits.attack_kit import check_attack
from mubench.attacks.base import (ATTACKS, EVERY_CELL, SHADOW_NEEDS, Attack, AttackedCell, Column, SeedContext, resolve_attacks,
                             shadow_need)
from mubench.core.errors import MubenchError
from mubench.harness.plan import MethodSpec, RunPlan, SeedSetup
from mubench.kits.method_kit import TOY_RECIPE, toy_splits


@pytest.mark.parametrize("text, names", [
    ("none", ()), ("", ()), ("lira", ("lira",)), ("ulira", ("lira", "ulira")), ("ulira,lira", ("lira", "ulira")),
    (" lira , lira ", ("lira",))])
def test_attack_names_resolve_with_what_each_requires_first(text, names):
    assert resolve_attacks(text) == names


@pytest.mark.parametrize("text, says", [
    ("lra", "unknown attack 'lra'; known attacks: lira, mia, mia-efficacy, probe, relearn, scale-free, ulira. Did you mean 'lira'?"),
    ("none,lira", "mixes 'none' with attacks")])
def test_a_bad_attack_name_is_one_sentence_before_anything_runs(text, says, cli, tmp_path):
    with pytest.raises(MubenchError, match=says.replace(".", r"\.").replace("?", r"\?")):
        resolve_attacks(text)
    result = cli("run", "--preset", "smoke", "--methods", "finetune", "--attack", text, "--out", str(tmp_path))
    assert result.exit_code == 2 and says in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("name", ["lira", "ulira"])
def test_every_built_in_attack_declares_what_the_harness_reads(name):
    attack = ATTACKS.get(name)
    assert issubclass(attack, Attack) and attack.registered_name == name and attack.title
    assert attack.shadows in SHADOW_NEEDS
    assert attack.columns and all(isinstance(c, Column) for c in attack.columns)
    assert len({c.metric for c in attack.columns}) == len(attack.columns)
    assert all(ATTACKS.get(required) for required in attack.requires)


def test_the_most_any_attack_needs_of_the_shadows_is_trained():
    assert shadow_need(()) == ""
    assert shadow_need(("lira",)) == "phi"
    assert shadow_need(("lira", "ulira")) == "models"


def test_a_cells_attacks_share_what_they_compute_once():
    cell = AttackedCell(model=None, spec=MethodSpec("original"))
    calls = []
    assert cell.memo("phi", lambda: calls.append(1) or 41) == 41
    assert cell.memo("phi", lambda: calls.append(1) or 42) == 41
    assert calls == [1]


class Silent(Attack):
    """An attack that needs no shadows (only its code changes keys)."""
    columns = (Column("silent_score", "silent"),)

    def score(self, cell):
        return {"silent_score": 0.5}


def test_an_attack_without_shadows_keys_its_cells_by_its_code_and_not_the_shadow_count(tmp_path, monkeypatch):
    monkeypatch.setitem(ATTACKS._entries, "silent", Silent)
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri="", cache_dir=tmp_path,
                   attacks=("silent",))
    fields = cell_keys.attack_fields(plan)
    assert fields["attack"] == "silent" and fields["shadows"] == 0
    assert cell_keys.attack_fields(dataclasses.replace(plan, shadows=64)) == fields
    splits = dataclasses.replace(toy_splits(), task="digits")
    keys = {cell_keys.cell_key(SeedSetup(p, splits, TOY_RECIPE, "toy", 0), MethodSpec("finetune"),
                               MethodSpec("finetune").config_for(splits.task), 1)
            for p in (plan, dataclasses.replace(plan, attacks=()), dataclasses.replace(plan, attacks=("lira",)))}
    assert len(keys) == 3


def test_an_attack_column_must_be_a_metric_name_the_board_can_read():
    with pytest.raises(MubenchError, match="'my-auc' must be a Python identifier"):
        Column("my-auc", "my AUC")


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_registered_attack_passes_the_conformance_kit(name):
    check_attack(name)


class Unsteady(Silent):
    """Draws its score from the global RNG: not deterministic."""
    def score(self, cell):
        return {"silent_score": float(torch.rand(1))}


class Meddling(Silent):
    """Shifts the model's weights while scoring it."""
    def score(self, cell):
        with torch.no_grad():
            next(cell.model.parameters()).add_(1.0)
        return {"silent_score": 0.5}


class Forgetful(Silent):
    """Returns a metric it did not declare and not the one it did."""
    def score(self, cell):
        return {"other_score": 0.5}


class Scalar(Silent):
    def score(self, cell):
        cell.examples.update(silent_members=np.zeros((2, 2)), silent_nonmembers=np.zeros((2, 2)))
        return {"silent_score": 0.5}


class Unpaired(Silent):
    def score(self, cell):
        cell.examples["silent_members"] = np.zeros(3)
        return {"silent_score": 0.5}


@pytest.mark.parametrize("wrong, says", [(Unsteady, "not deterministic"), (Meddling, "changed the model"),
                                         (Forgetful, "did not return: ['silent_score']"),
                                         (Unpaired, "pairs"), (Scalar, "not one score per example")])
def test_the_attack_kit_fails_a_wrong_attack(wrong, says):
    check_attack(Silent)
    with pytest.raises(AssertionError, match=re.escape(says)):
        check_attack(wrong)


def test_what_an_attack_reads_of_its_seed_cannot_be_changed_by_another_attack(tmp_path):
    context = SeedContext(None, toy_splits(), TOY_RECIPE, "toy", 0, None, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.shadows = "something else"


@pytest.mark.parametrize("text, resolved", [("mia", ()), ("scale-free,lira", ("lira",)), ("ulira,mia", ("lira", "ulira"))])
def test_the_attacks_that_score_every_cell_are_never_added_again(text, resolved):
    assert EVERY_CELL == ("mia", "scale-free")
    assert resolve_attacks(text) == resolved
