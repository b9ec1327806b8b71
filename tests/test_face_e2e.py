"""A face task end to end in the default suite: the multi-label MUCAC task on a tiny fake of its released layout,
through the CLI, with its separate unseen role as the MIA's non-members."""
import math
import sqlite3

from fixtures_faces import make_celeba

SIZES = {"test": 14, "forget": 16, "retain": 12, "val": 4, "unseen": 12}


def test_mucac_multi_runs_end_to_end_and_attacks_with_unseen(tmp_path, cli):
    root = make_celeba(tmp_path / "root", SIZES)
    out = tmp_path / "out"
    result = cli("run", "--tasks", "mucac-multi", "--data-root", str(root), "--preset", "smoke", "--methods",
                 "finetune", "--out", str(out), "--quiet", "--no-plots")
    assert result.exit_code == 0, result.stderr
    assert "3 cells run" in result.stderr
    board = (out / "leaderboards" / "mucac-multi-resnet18-smoke.md").read_text()
    for row in ("original (reference)", "retrain (reference)", "| finetune"):
        assert row in board
    with sqlite3.connect(out / "mlflow.db") as db:
        metrics = db.execute("select key, value from latest_metrics where key in "
                             "('mia_nonmembers', 'mia_members', 'test_acc', 'nomus')").fetchall()
    by_key = {}
    for key, value in metrics:
        by_key.setdefault(key, []).append(value)
    assert by_key["mia_nonmembers"] == [SIZES["unseen"]] * 3  # min(forget, unseen); with test it would be 14
    assert all(0 <= v <= 1 and math.isfinite(v) for v in by_key["test_acc"] + by_key["nomus"])
