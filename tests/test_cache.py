import json

import pytest
import torch

from mubench.train.cache import ModelCache
from mubench.kits.method_kit import toy_model

FIELDS = {"task": "toy", "split_hash": "abc", "backbone": "toy", "seed": 0, "role": "original"}


def _train(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    return 1.5


def _never(model):
    raise AssertionError("a cache hit must not train")


def test_miss_trains_and_hit_loads_the_same_weights(tmp_path):
    cache = ModelCache(tmp_path)
    trained = toy_model(3)
    record, hit = cache.get_or_train(FIELDS, trained, _train)
    assert not hit and record["train_seconds"] == 1.5
    loaded = toy_model(3, seed=1)
    again, hit = cache.get_or_train(FIELDS, loaded, _never)
    assert hit and again == record
    for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_key_changes_with_any_field(tmp_path):
    cache = ModelCache(tmp_path)
    assert cache.key(FIELDS) != cache.key({**FIELDS, "seed": 1})
    assert cache.key(FIELDS) == cache.key(dict(reversed(list(FIELDS.items()))))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "record"])
def test_corrupt_entry_is_retrained_not_loaded(tmp_path, damage, caplog):
    cache = ModelCache(tmp_path)
    cache.get_or_train(FIELDS, toy_model(3), _train)
    weights, record = cache.paths(cache.key(FIELDS))
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "garbage":
        weights.write_bytes(b"not a checkpoint")
    else:
        record.write_text("{")
    calls = []
    _, hit = cache.get_or_train(FIELDS, toy_model(3), lambda m: calls.append(1) or 2.0)
    assert not hit and calls == [1]
    assert "corrupt" in caplog.text
    assert json.loads(record.read_text())["train_seconds"] == 2.0


def test_second_cli_run_trains_nothing(tmp_path, cli):
    out = tmp_path / "out"
    assert cli("run", "--preset", "smoke", "--methods", "original,retrain,finetune", "--out", str(out),
               "--quiet").exit_code == 0
    records = {p.name: p.read_text() for p in (out / "cache").glob("*.json")}
    assert len(records) == 2  # original and retrain
    result = cli("run", "--preset", "smoke", "--methods", "original,retrain,finetune", "--out", str(out), "--quiet",
                 "--force")
    assert result.exit_code == 0
    assert {p.name: p.read_text() for p in (out / "cache").glob("*.json")} == records
    assert "3 cells run" in result.stderr and "references from cache: 2, trained: 0" in result.stderr


def test_corrupt_cache_file_in_a_run_is_retrained(tmp_path, cli):
    out = tmp_path / "out"
    assert cli("run", "--preset", "smoke", "--methods", "original", "--out", str(out), "--quiet").exit_code == 0
    checkpoints = sorted((out / "cache").glob("*.pt"))
    checkpoints[0].write_bytes(b"corrupt")
    result = cli("run", "--preset", "smoke", "--methods", "original", "--out", str(out), "--quiet", "--force")
    assert result.exit_code == 0
    assert "references from cache: 1, trained: 1" in result.stderr
    torch.load(checkpoints[0], weights_only=True)  # rewritten whole


def test_a_cache_folder_that_does_not_exist_yet_is_made_and_reused(tmp_path):
    cache = ModelCache(tmp_path / "runs" / "cache")  # --cache-dir two levels below anything that exists
    first, hit = cache.get_or_train(FIELDS, toy_model(3), _train)
    other, hit_other = cache.get_or_train({**FIELDS, "seed": 1}, toy_model(3), _train)  # the folder exists now
    assert not hit and not hit_other and first["key"] != other["key"]
    assert cache.get_or_train(FIELDS, toy_model(3, seed=2), _never)[1]


def test_a_write_that_fails_leaves_neither_the_file_nor_a_temporary_one(tmp_path):
    from mubench.train.cache import _atomic_write

    def breaks(handle):
        handle.write(b"half a checkpoint")
        raise OSError("No space left on device")
    with pytest.raises(OSError, match="No space"):
        _atomic_write(tmp_path / "entry.pt", breaks)
    assert list(tmp_path.iterdir()) == []


def test_a_save_killed_midway_leaves_temporary_files_that_the_next_use_of_the_entry_removes(tmp_path):
    """SIGKILL skips the cleanup of a failed write: the next process to take the entry's lock removes what it left,
    and leaves another entry's temporary files alone (their writer may be alive)."""
    cache = ModelCache(tmp_path)
    key, other = cache.key(FIELDS), cache.key({**FIELDS, "seed": 1})
    stale = [tmp_path / f"{key}.ptab12cd.tmp", tmp_path / f"{key}.jsonx9.tmp"]
    alive = tmp_path / f"{other}.ptzz.tmp"
    for path in (*stale, alive):
        path.write_bytes(b"half a checkpoint")
    cache.get_or_train(FIELDS, toy_model(3), _train)
    assert not any(path.exists() for path in stale) and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(key)) == [
        f"{key}.json", f"{key}.lock", f"{key}.pt"]
