"""Relearning (mubench.attacks.relearn): known answers on the toy cell, the kit, and the model left untouched."""
import copy

import pytest
import torch

from mubench.attacks.base import AttackedCell, SeedContext
from mubench.attacks.relearn import STEPS, Relearn, relearn_subset, steps_to
from mubench.core.losses import task_loss
from mubench.harness.plan import MethodSpec, RunPlan
from mubench.kits.attack_kit import check_attack
from mubench.kits.method_kit import TOY_RECIPE, single_thread, toy_cell
from mubench.scores import metrics


def _context(cell, original=True):
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=None, tracking_uri="", cache_dir=None,
                   quiet=True, attacks=("relearn",))
    return SeedContext(plan, cell.splits, TOY_RECIPE, "toy", 0, None, 1.0, cell.original if original else None,
                       cell.retrained)


def _score(cell, model) -> dict:
    with single_thread():
        return Relearn(_context(cell)).score(AttackedCell(model, MethodSpec("original")))


def _hidden(cell) -> torch.nn.Module:
    """The Original with its forget outputs suppressed by gradient ascent until forget accuracy is below Retrain's:
    hidden, not removed."""
    model = cell.model()
    target = metrics.mean_or_nan(metrics.evaluate(cell.retrained, cell.splits.forget, cell.splits.kind,
                                                  cell.splits.preprocess, torch.device("cpu"))[1])
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = cell.splits.preprocess.to_input(cell.splits.forget.images), cell.splits.forget.labels
    with single_thread():
        for _ in range(200):
            model.eval()
            accuracy = metrics.mean_or_nan(metrics.evaluate(model, cell.splits.forget, cell.splits.kind,
                                                            cell.splits.preprocess, torch.device("cpu"))[1])
            if accuracy < target:
                return model
            optimiser.zero_grad()
            (-task_loss(model(x), y, cell.splits.kind)).backward()
            optimiser.step()
    pytest.fail("gradient ascent did not bring forget accuracy under Retrain's")


def test_a_model_that_hides_the_forget_set_relearns_faster_than_retrain():
    cell = toy_cell()
    hidden, retrain = _score(cell, _hidden(cell)), _score(cell, copy.deepcopy(cell.retrained))
    assert hidden["relearn_steps"] < retrain["relearn_steps"]
    assert hidden["relearn_auc"] > retrain["relearn_auc"]
    assert hidden["relearn_reached"] == 1.0
    assert retrain["relearn_reached"] == float(retrain["relearn_steps"] <= STEPS)


def test_the_original_is_already_relearned_at_step_zero():
    cell = toy_cell()
    assert _score(cell, cell.model())["relearn_steps"] == 0


def test_steps_to_threshold_and_the_censored_value():
    assert steps_to([0.1, 0.5, 0.9], 0.5) == 1 and steps_to([0.1, 0.2], 0.5) == STEPS + 1


def test_the_subset_is_seeded_disjoint_and_the_same_for_every_row():
    attacker, held_out = relearn_subset(50, seed=3)
    assert len(attacker) == 5 and len(held_out) == 45 and not set(attacker.tolist()) & set(held_out.tolist())
    assert torch.equal(attacker, relearn_subset(50, seed=3)[0]) and not torch.equal(attacker,
                                                                                    relearn_subset(50, seed=4)[0])


def test_without_the_references_the_attack_says_it_is_unavailable():
    from mubench.attacks.base import AttackUnavailable
    cell = toy_cell()
    with pytest.raises(AttackUnavailable, match="Original"):
        Relearn(_context(cell, original=False)).score(AttackedCell(cell.model(), MethodSpec("original")))


def test_the_attack_kit_passes_and_the_scored_model_is_unchanged():
    check_attack("relearn")  # the kit also fails an attack that changes the model it scores or is not repeatable


def test_the_recovery_figure_draws_one_line_per_model_with_the_references_in_black(tmp_path):
    from mubench.boards.figures import draw_recovery
    figure = draw_recovery({"Original": [1.0, 1.0], "Retrain": [0.2, 0.3], "finetune": [0.5, 0.9]},
                           tmp_path / "relearn.png", "t")
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert set(lines) == {"Original", "Retrain", "finetune"} and (tmp_path / "relearn.png").is_file()
    assert lines["Original"].get_linestyle() == "--" and lines["Retrain"].get_linestyle() == ":"
    assert lines["Original"].get_color() == lines["Retrain"].get_color() == "black" != lines["finetune"].get_color()
    assert list(lines["finetune"].get_ydata()) == [0.5, 0.9]
