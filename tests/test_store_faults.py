"""A damaged store, an unreachable tracking URI and a full disk: one sentence naming the file or URI and what to
do, exit 2, nothing left RUNNING by the process that saw the error, and the same command resumes once it is fixed."""
import re
import shutil
import sqlite3
from contextlib import closing
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import invoke

MUBENCH = Path(sys.executable).parent / "mubench"
SMOKE = ("--preset", "smoke", "--no-plots", "--quiet")


def _one_sentence(result, *words: str) -> None:
    assert result.exit_code == 2, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.parametrize("command", ["run", "leaderboard", "report"])
def test_a_damaged_store_is_one_sentence_naming_it_and_is_left_as_it_was(smoke_run, tmp_path, damage, command):
    out = Path(shutil.copytree(smoke_run[0], tmp_path / "out"))
    db = out / "mlflow.db"
    if damage == "garbage":
        db.write_bytes(b"not sqlite " * 500)
    else:
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    before = db.read_bytes()
    args = ["--out", str(out), "--methods", "finetune", *SMOKE] if command == "run" else \
        ["--store", str(out), "--out", str(tmp_path / "boards")]
    _one_sentence(invoke(command, *args), str(db), "move it aside")
    assert db.read_bytes() == before


def test_an_unreachable_tracking_server_is_one_sentence_within_seconds(tmp_path):
    started = time.monotonic()
    result = invoke("run", "--methods", "finetune", *SMOKE, "--out", str(tmp_path),
                    "--tracking-uri", "http://127.0.0.1:9")
    _one_sentence(result, "'http://127.0.0.1:9'", "no MLflow server answered")
    assert time.monotonic() - started < 60  # MLflow's own retries take minutes
    assert not (tmp_path / "mlflow.db").exists()


def test_a_tracking_uri_of_an_unknown_scheme_is_one_sentence(tmp_path):
    _one_sentence(invoke("leaderboard", "--tracking-uri", "sqlite:/relative.db", "--out", str(tmp_path)),
                  "not a SQLite URI of a file")
    _one_sentence(invoke("run", "--methods", "finetune", *SMOKE, "--out", str(tmp_path), "--tracking-uri",
                         "ftp://host/store"), "scheme 'ftp'")


def _mount_small_disk(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def _statuses(db: Path) -> list[str]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:  # closed: the disk must unmount
        return [status for (status,) in conn.execute("select status from runs")]


def _cells(disk: Path) -> list[tuple[str, str]]:
    """(cell key, status) of every run in the store; the invocation's key is None."""
    with closing(sqlite3.connect(disk / "out" / "mlflow.db")) as conn:
        return conn.execute("select t.value, r.status from runs r left join tags t on t.run_uuid = r.run_uuid "
                            "and t.key = 'mubench.cell_key'").fetchall()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_full_disk_stops_the_grid_with_one_sentence_and_a_rerun_on_a_larger_disk_finishes_it(tmp_path, workers):
    """The store on a 1 MB tmpfs (MLflow's empty schema alone is about 0.9 MB) fills while cells are logged; the
    references are cached on the normal disk. Needs root to mount; skipped elsewhere."""
    disk = tmp_path / "disk"
    if not _mount_small_disk(disk, "1000k"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        command = [str(MUBENCH), "run", *SMOKE, "--methods", "finetune,ssd,scrub,salun", "--workers", workers,
                   "--out", str(disk / "out"), "--cache-dir", str(tmp_path / "cache")]
        full = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert full.returncode == 2, full.stderr[-3000:]
        lines = full.stderr.strip().splitlines()
        assert len(lines) == 1 and f"the disk of --out '{disk / 'out'}' ran out of space" in lines[0], full.stderr
        assert "RUNNING" not in _statuses(disk / "out" / "mlflow.db")
        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
        again = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        run, skipped = map(int, re.search(r"(\d+) cells run, (\d+) already finished", again.stderr).groups())
        assert run + skipped == 6 and run >= 1
        cells = _cells(disk)
        assert "RUNNING" not in {status for _, status in cells}
        assert len({key for key, status in cells if key and status == "FINISHED"}) == 6
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], capture_output=True)
