"""FER-2013 (fer2013, fer2013-mini): committed manifests, the real sample when it is beside the repository, and
synthetic roots in the folder release's layout for every bad input.

The real sample is never copied into the project: tests read it from ../shared/data/fer2013/sample and skip when
it is absent (a user's clone has none).
"""
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import fixtures_faces as ff
from test_datasets import assert_user_error, check, load  # the face tasks' shared test helpers
from mubench.cli.main import main
from mubench.data.splits import ROLES
from mubench.datasets import fer2013
from mubench.data.tasks import SMOKE_CAPS, TASKS, manifest_path, read_manifest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013"
SAMPLE, RELEASE_LIST = SHARED / "sample", SHARED / "files.tsv"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="no FER-2013 sample beside the repository")
needs_list = pytest.mark.skipif(not RELEASE_LIST.is_file(), reason="no FER-2013 file list beside the repository")


@pytest.fixture(autouse=True)
def decode_cache(_no_ambient_tracking_uri, monkeypatch, tmp_path):
    monkeypatch.setenv("MUBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "decoded"


def make_fer(root: Path, paths: list[str]) -> Path:
    """Greyscale 48×48 JPEGs at the given release paths, tinted by emotion (synthetic, never real faces)."""
    for i, path in enumerate(paths):
        ff.write_image(root / path, fer2013.EMOTIONS.index(fer2013.emotion_of(path)), 48, seed=i, mode="L")
    return root


def some(task: str, per_role: int = 3) -> list[str]:
    roles, _ = read_manifest(task)
    return [p for role in ROLES for p in roles[role][:per_role]]


def mini_paths() -> list[str]:
    roles, _ = read_manifest("fer2013-mini")
    return [p for role in ROLES for p in roles[role]]


# --- the committed manifests ---------------------------------------------------------------------------------

def test_full_manifest_follows_the_challenge_roles_with_a_stratified_forget():
    roles, _ = read_manifest("fer2013")
    assert {r: len(roles[r]) for r in ROLES} == {"retain": 24403, "forget": 4306, "val": 3589, "test": 3589}
    assert all(p.startswith("train/") and "/Training_" in p for r in ("retain", "forget") for p in roles[r])
    assert all(p.startswith("test/") and "/PublicTest_" in p for p in roles["val"])
    assert all(p.startswith("test/") and "/PrivateTest_" in p for p in roles["test"])
    for emotion in fer2013.EMOTIONS:
        forget = sum(fer2013.emotion_of(p) == emotion for p in roles["forget"])
        train = forget + sum(fer2013.emotion_of(p) == emotion for p in roles["retain"])
        assert forget == round(0.15 * train)


def test_mini_manifest_is_a_fixed_subset_of_the_release_with_its_own_rule():
    full, _ = read_manifest("fer2013")
    mini, _ = read_manifest("fer2013-mini")
    release = {p for ids in full.values() for p in ids}
    assert {r: len(mini[r]) for r in ROLES} == {"retain": 1190, "forget": 210, "val": 207, "test": 213}
    assert all(p in release for ids in mini.values() for p in ids)
    assert all("/PublicTest_" in p for p in mini["val"]) and all("/PrivateTest_" in p for p in mini["test"])
    for emotion in fer2013.EMOTIONS:
        assert sum(fer2013.emotion_of(p) == emotion for p in mini["forget"]) == 30
        assert sum(fer2013.emotion_of(p) == emotion for p in mini["retain"]) == 170


@needs_list
def test_full_manifest_regenerates_byte_identical_from_the_release_list(tmp_path):
    fer2013.regenerate_manifest(RELEASE_LIST, tmp_path / "fer2013.json")
    assert (tmp_path / "fer2013.json").read_bytes() == manifest_path("fer2013").read_bytes()


@needs_sample
def test_mini_manifest_regenerates_byte_identical_from_the_sample(tmp_path):
    fer2013.regenerate_mini_manifest(SAMPLE, tmp_path / "fer2013-mini.json")
    assert (tmp_path / "fer2013-mini.json").read_bytes() == manifest_path("fer2013-mini").read_bytes()


# --- the real sample -------------------------------------------------------------------------------------------

@needs_sample
def test_the_sample_is_the_whole_mini_board_in_greyscale_48_pixels():
    splits = load("fer2013-mini", SAMPLE)
    mini, _ = read_manifest("fer2013-mini")
    for role in ROLES:
        split = splits.role(role)
        assert split.ids == tuple(mini[role])
        assert split.images.shape[1:] == (3, 48, 48) and split.images.dtype == torch.uint8
        assert torch.equal(split.images[:, 0], split.images[:, 1]) and torch.equal(split.images[:, 0],
                                                                                       split.images[:, 2])
        assert split.labels.tolist() == [fer2013.EMOTIONS.index(fer2013.emotion_of(p)) for p in mini[role]]
    assert not splits.notes["partial"] and splits.notes["images_resized_unusual"] == 0


@needs_sample
def test_the_sample_is_a_partial_root_of_the_full_task(caplog):
    splits = load("fer2013", SAMPLE)
    full, _ = read_manifest("fer2013")
    on_disk = {p.relative_to(SAMPLE).as_posix() for p in SAMPLE.rglob("*.jpg")}
    for role in ROLES:
        assert splits.role(role).ids == tuple(p for p in full[role] if p in on_disk)
    assert splits.notes["partial"] and "partial root" in caplog.text
    assert sum(len(splits.role(r)) for r in ROLES) == 1820


@needs_sample
def test_check_on_the_sample_prints_counts(tmp_path):
    result = check("fer2013-mini", SAMPLE)
    assert result.exit_code == 0, result.output + result.stderr
    assert "forget      210" in result.output and "partial root" not in result.output
    result = check("fer2013", SAMPLE)
    assert result.exit_code == 0, result.output + result.stderr
    assert "partial root: yes" in result.output


@pytest.mark.slow  # ~30 s on 2 shared cores, most of it MLflow start-up
@needs_sample
def test_mini_end_to_end_on_the_sample(tmp_path):
    result = CliRunner().invoke(main, ["run", "--tasks", "fer2013-mini", "--data-root", str(SAMPLE), "--preset",
                                       "smoke", "--methods", "original,retrain,finetune", "--threads", "1",
                                       "--no-plots", "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output + result.stderr
    text = "\n".join(b.read_text() for b in (tmp_path / "out" / "leaderboards").glob("*.md"))
    assert "fer2013-mini" in text and "retrain" in text.lower()


# --- synthetic roots -------------------------------------------------------------------------------------------

def test_a_synthetic_partial_root_loads_its_roles_in_greyscale(tmp_path):
    root = make_fer(tmp_path / "root", some("fer2013"))
    splits = load("fer2013", root)
    assert [len(splits.role(r)) for r in ROLES] == [3, 3, 3, 3]
    assert splits.retain.images.shape[1:] == (3, 48, 48) and splits.notes["partial"]
    assert splits.preprocess.augment == "crop-flip" and TASKS.get("fer2013").recipe.augment
    assert splits.shrunk(SMOKE_CAPS).retain.images.shape[0] == 3


def test_a_synthetic_mini_root_inside_a_larger_copy_ignores_the_rest(tmp_path):
    root = make_fer(tmp_path / "root", mini_paths() + some("fer2013", 1))
    splits = load("fer2013-mini", root)
    mini, _ = read_manifest("fer2013-mini")
    assert all(splits.role(r).ids == tuple(mini[r]) for r in ROLES)
    extra = len(set(some("fer2013", 1)) - set(mini_paths()))
    assert splits.notes["ignored_files"] == extra and not splits.notes["partial"]


def test_the_release_may_sit_one_folder_down(tmp_path):
    make_fer(tmp_path / "fer2013", some("fer2013"))
    assert len(load("fer2013", tmp_path).retain) == 3


def test_non_image_files_are_ignored_and_counted(tmp_path):
    root = make_fer(tmp_path, some("fer2013"))
    (root / "train" / "angry" / "Thumbs.db").write_text("x")
    (root / "README.txt").write_text("x")
    assert load("fer2013", root).notes["ignored_files"] == 1  # files at the root are never looked at


@pytest.mark.parametrize("task", ["fer2013", "fer2013-mini"])
def test_a_missing_folder(tmp_path, task):
    root = make_fer(tmp_path, [p for p in some("fer2013") if p.startswith("train/")])
    assert_user_error(check(task, root), str(root / "test"), "FER-2013 folder", "is missing")


def test_a_root_of_another_task_is_named(tmp_path):
    root = ff.make_rafdb_folders(tmp_path)
    assert_user_error(check("fer2013", root), "is missing", "task rafdb")


def test_an_unknown_emotion_folder(tmp_path):
    root = make_fer(tmp_path, some("fer2013"))
    ff.write_image(root / "train" / "happiness" / "Training_1.jpg", 3, 48)
    assert_user_error(check("fer2013", root), "happiness", "not an emotion", "angry, disgust")


@pytest.mark.parametrize("name,fragment", [("img_001.jpg", "Training_<id>.jpg"),
                                           ("PublicTest_1234.jpg", "Training_<id>.jpg"),
                                           ("Training_12.png", "Training_<id>.jpg")])
def test_a_wrongly_named_file(tmp_path, name, fragment):
    root = make_fer(tmp_path, some("fer2013"))
    ff.write_image(root / "train" / "fear" / name, 2, 48)
    assert_user_error(check("fer2013", root), name, "not named as the release names train/", fragment)


def test_a_training_name_under_test_is_refused(tmp_path):
    root = make_fer(tmp_path, some("fer2013"))
    ff.write_image(root / "test" / "sad" / "Training_1.jpg", 4, 48)
    assert_user_error(check("fer2013", root), "Training_1.jpg", "PublicTest_<id>.jpg or PrivateTest_<id>.jpg")


def test_an_image_outside_the_release(tmp_path):
    root = make_fer(tmp_path, some("fer2013"))
    ff.write_image(root / "train" / "angry" / "Training_1.jpg", 0, 48)
    assert_user_error(check("fer2013", root), "Training_1.jpg", "not in the FER-2013 release")


def test_an_image_under_the_wrong_emotion_names_its_folder_in_the_release(tmp_path):
    paths = some("fer2013")
    root = make_fer(tmp_path, paths)
    moved = paths[0]
    wrong = "disgust" if fer2013.emotion_of(moved) != "disgust" else "angry"
    target = root / "train" / wrong / Path(moved).name
    target.parent.mkdir(parents=True, exist_ok=True)
    (root / moved).rename(target)
    assert_user_error(check("fer2013", root), Path(moved).name, "not in the FER-2013 release", f"'{moved}'")


def test_a_mini_image_missing_from_disk(tmp_path):
    paths = mini_paths()
    root = make_fer(tmp_path, paths[1:])
    assert_user_error(check("fer2013-mini", root), "lacks 1 of the 1820 images of fer2013-mini", f"'{paths[0]}'")


def test_a_partial_root_without_a_role(tmp_path):
    roles, _ = read_manifest("fer2013")
    root = make_fer(tmp_path, roles["retain"][:2] + roles["forget"][:2] + roles["val"][:2])
    assert_user_error(check("fer2013", root), "no image of role 'test'", "PrivateTest")


def test_a_truncated_image(tmp_path):
    paths = some("fer2013")
    root = make_fer(tmp_path, paths)
    (root / paths[-1]).write_bytes((root / paths[-1]).read_bytes()[:40])
    assert_user_error(check("fer2013", root), Path(paths[-1]).name, "cannot be decoded")
