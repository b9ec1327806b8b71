"""Face tasks and image folders: layouts, committed manifests, decode-once cache, bad data roots, end to end.

Every data root here is a tiny synthetic fixture written at test time (tests/fixtures_faces.py).
"""
import logging
import random
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import fixtures_faces as ff
from mubench.data import images
from mubench.cli.main import main
from mubench.data.splits import ROLES, Preprocess
from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind
from mubench.data.tasks import SMOKE_CAPS, TASKS, manifest_path
from mubench.datasets import imagefolder, mucac, mufac, rafdb

FACE_TASKS = ("mufac", "rafdb", "mucac-gender", "mucac-multi")
BUILDERS = {"mufac": ff.make_mufac, "rafdb": ff.make_rafdb, "rafdb-folders": ff.make_rafdb_folders,
            "mucac-gender": ff.make_celeba, "mucac-multi": ff.make_celeba,
            "celeba-flat": lambda root: ff.make_celeba(root, layout="flat"), "imagefolder": ff.make_imagefolder}
# Each task's roles and where they come from (the task docstrings and the README's table say the same).
TASK_ROLES = {"mufac": ROLES, "rafdb": ROLES, "mucac-gender": ROLES + ("unseen",), "mucac-multi": ROLES + ("unseen",)}


@pytest.fixture(autouse=True)
def decode_cache(_no_ambient_tracking_uri, monkeypatch, tmp_path):
    monkeypatch.setenv("MUBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(imagefolder.RETIRED_VARIABLE, raising=False)
    return tmp_path / "cache" / "decoded"


def load(task: str, root: Path | None):
    return TASKS.get(task)().load(root)


def check(task: str, root: Path | None, *options: str):
    return CliRunner().invoke(main, ["data", "check", task] + (["--data-root", str(root)] if root else [])
                              + [word for option in options for word in ("--task-set", option)])


def assert_user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output + result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --- the committed manifests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("module,name", [(mufac, "mufac"), (rafdb, "rafdb"), (mucac, "mucac")])
def test_rule_manifests_regenerate_byte_identical(tmp_path, module, name):
    images.write_rule_manifest(tmp_path / f"{name}.json", module.rule_manifest())
    assert (tmp_path / f"{name}.json").read_bytes() == manifest_path(name).read_bytes()


def dlfd_reference_split(train_folder: Path) -> dict[str, list[str]]:
    """DLFD's RAF_loader.py, re-implemented independently of the module: torchvision's own ImageFolder over
    train/ (it never opens the files), then random.seed(42); random.shuffle(indices) on the global generator."""
    from torchvision.datasets import ImageFolder
    folder = ImageFolder(str(train_folder))
    names = [Path(path).name.replace("_aligned", "") for path, _ in folder.samples]
    state = random.getstate()
    try:
        random.seed(42)
        indices = list(range(len(folder)))
        random.shuffle(indices)
    finally:
        random.setstate(state)
    num_train = len(folder)
    num_val = int(num_train * 0.1)
    num_retain = int((num_train - num_val) * 0.7)
    subsets = {"val": indices[:num_val], "retain": indices[num_val:num_val + num_retain],
               "forget": indices[num_val + num_retain:]}
    return {role: [names[i] for i in subset] for role, subset in subsets.items()}


def test_rafdb_split_is_dlfds_rule_on_a_full_size_release_in_both_layouts(tmp_path):
    folders_root = ff.make_rafdb_folders(tmp_path / "folders", train=12271, test=3068, images=False)
    official_root = ff.make_rafdb(tmp_path / "official", train=12271, test=3068, images=False)
    expected = dlfd_reference_split(folders_root / "DATASET" / "train")
    assert {role: len(ids) for role, ids in expected.items()} == {"val": 1227, "retain": 7730, "forget": 3314}
    manifest, _ = images.read_rule_manifest("rafdb")
    for root in (folders_root, official_root):
        found, _ = rafdb.listing(root, manifest)
        for role in ("retain", "forget", "val"):
            assert found.ids[role] == expected[role], (root.name, role)
        assert len(found.ids["test"]) == 3068 and not found.notes["partial"]
    # the split follows the labels: relabelling one image moves it in the ImageFolder order and changes the split
    listing_file = official_root / "basic" / "EmoLabel" / "list_patition_label.txt"
    lines = listing_file.read_text().splitlines()
    name, label = lines[0].split()
    lines[0] = f"{name} {int(label) % 7 + 1}"
    listing_file.write_text("\n".join(lines) + "\n")
    relabelled, _ = rafdb.listing(official_root, manifest)
    assert relabelled.ids["forget"] != expected["forget"]


def test_rafdb_split_on_a_partial_root_is_the_same_rule(tmp_path, caplog):
    root = ff.make_rafdb_folders(tmp_path, train=40, test=5, images=False)
    manifest, _ = images.read_rule_manifest("rafdb")
    with caplog.at_level(logging.WARNING):
        found, _ = rafdb.listing(root, manifest)
    expected = dlfd_reference_split(root / "DATASET" / "train")
    assert all(found.ids[role] == expected[role] for role in expected)
    assert [len(found.ids[r]) for r in ("val", "retain", "forget")] == [4, 25, 11]
    assert found.notes["partial"] and "partial root" in caplog.text


def test_rule_manifests_pin_the_release_numbers():
    mufac_rules, _ = images.read_rule_manifest("mufac")
    assert mufac_rules["roles"]["forget"]["count"] == 1500 and mufac_rules["roles"]["retain"]["count"] == 8525
    rafdb_rules, _ = images.read_rule_manifest("rafdb")
    assert rafdb_rules["rule"] == {"order": "class folder name (label 1-7) as a string, then file name",
                                   "python_random_seed": 42, "val_fraction": 0.1, "retain_fraction_of_rest": 0.7}
    assert {r: rafdb_rules["roles"][r]["count"] for r in ROLES} == {"retain": 7730, "forget": 3314, "val": 1227,
                                                                    "test": 3068}
    mucac_rules, _ = images.read_rule_manifest("mucac")
    assert {r: (v["identity_from"], v["identity_below"]) for r, v in mucac_rules["roles"].items()} == {
        "test": (0, 190), "forget": (190, 1250), "retain": (1250, 4665), "val": (4665, 4855), "unseen": (4855, None)}


def test_a_tampered_manifest_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "splits" / "mufac.json"
    copy.parent.mkdir()
    copy.write_text(manifest_path("mufac").read_text().replace("1500", "1400"))
    copy.with_suffix(".json.sha256").write_text(manifest_path("mufac").with_suffix(".json.sha256").read_text())
    monkeypatch.setattr("mubench.data.tasks.manifest_path", lambda task: copy)
    with pytest.raises(MubenchError, match="SHA-256"):
        load("mufac", ff.make_mufac(tmp_path / "root"))


# --- each layout loads --------------------------------------------------------------------------------------

@pytest.mark.parametrize("task,builder", [("mufac", "mufac"), ("rafdb", "rafdb"), ("rafdb", "rafdb-folders"),
                                          ("mucac-gender", "mucac-gender"), ("mucac-multi", "mucac-multi"),
                                          ("mucac-multi", "celeba-flat"), ("imagefolder", "imagefolder")])
def test_each_layout_loads_as_128_pixel_uint8_roles(tmp_path, task, builder):
    splits = load(task, BUILDERS[builder](tmp_path / "root"))
    assert splits.roles() == TASK_ROLES.get(task, ROLES)
    for role in splits.roles():
        split = splits.role(role)
        assert len(split) > 0 and split.images.dtype == torch.uint8
        assert tuple(split.images.shape[1:]) == (3, 128, 128)
        if splits.kind == TaskKind.MULTICLASS:
            assert split.labels.dtype == torch.int64 and int(split.labels.max()) < splits.num_outputs
        else:
            assert split.labels.dtype == torch.float32 and split.labels.shape[1] == 3
    assert len(splits.split_hash) == 64
    shrunk = splits.shrunk(SMOKE_CAPS)  # fixtures are below the smoke caps: nothing is lost
    assert shrunk.roles() == splits.roles()
    assert all(len(shrunk.role(r)) == len(splits.role(r)) for r in splits.roles())


def test_the_smoke_preset_caps_unseen_like_test_and_keeps_it_separate(tmp_path):
    splits = load("mucac-multi", ff.make_celeba(tmp_path, {"test": 6, "forget": 4, "retain": 6, "val": 3,
                                                           "unseen": 9}))
    shrunk = splits.shrunk({**SMOKE_CAPS, "test": 5})
    assert shrunk.roles() == ROLES + ("unseen",) and len(shrunk.unseen) == 5 and len(shrunk.test) == 5
    assert set(shrunk.unseen.ids) <= set(splits.unseen.ids) and not set(shrunk.unseen.ids) & set(shrunk.test.ids)


def test_face_tasks_preprocess_as_their_papers_code():
    mufac_task, rafdb_task = TASKS.get("mufac"), TASKS.get("rafdb")
    # DLFD's MUFAC_loader.py and age_cls_experiments.ipynb
    assert mufac_task.preprocess == Preprocess((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "flip-affine-jitter")
    assert mufac_task.recipe.batch_size == 32
    # DLFD's RAF_loader.py: Normalize(0.5, 0.5); mubench flips (their loader trains unaugmented by a bug)
    assert rafdb_task.preprocess == Preprocess((0.5,) * 3, (0.5,) * 3, "flip") and rafdb_task.decode.grey
    for name in FACE_TASKS + ("imagefolder",):
        assert TASKS.get(name).recipe.augment, name


def test_flip_affine_jitter_is_seeded_by_the_loader_and_leaves_other_kinds_alone():
    x = (torch.rand(6, 3, 32, 32) * 255).to(torch.uint8)
    dlfd = Preprocess((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "flip-affine-jitter")
    first = dlfd.to_input(x, True, torch.Generator().manual_seed(3))
    again = dlfd.to_input(x, True, torch.Generator().manual_seed(3))
    other = dlfd.to_input(x, True, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    low, high = dlfd.input_range()
    assert bool((first >= low - 1e-5).all() and (first <= high + 1e-5).all())
    assert torch.equal(dlfd.to_input(x, False), dlfd.to_input(x))  # evaluation batches are never augmented
    flip = Preprocess((0.0,) * 3, (1.0,) * 3, "flip")  # the flip kind draws and does exactly what it did
    g = torch.Generator().manual_seed(0)
    flips = torch.rand(6, generator=torch.Generator().manual_seed(0)) < 0.5
    expected = x.float() / 255
    expected[flips] = expected[flips].flip(-1)
    assert torch.equal(flip.to_input(x, True, g), expected)


@pytest.mark.parametrize("scale,shear,angle", [(1.2, 0.0, 0.0), (0.8, 0.0, 0.0), (1.0, 8.0, 0.0),
                                               (1.0, 0.0, 7.0), (1.1, -6.0, -9.0)])
def test_the_affine_warp_matches_torchvision(scale, shear, angle):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as tvf
    from mubench.data import splits as data
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # not the global RNG's state
    image = torch.nn.functional.avg_pool2d(image, 5, 1, 2)  # smooth, so interpolation details barely matter
    ours = data._warp(image.clone(), torch.tensor([scale]), torch.tensor([shear]), torch.tensor([angle]))
    theirs = tvf.rotate(tvf.affine(image, 0.0, [0, 0], scale, [shear, 0.0], InterpolationMode.BILINEAR), angle,
                        InterpolationMode.BILINEAR)
    inner = (slice(None), slice(None), slice(16, 48), slice(16, 48))  # away from the borders and their fill
    assert float((ours[inner] - theirs[inner]).abs().max()) < 0.05


def test_mufac_forget_is_the_first_train_rows_scaled_on_a_partial_root(tmp_path, caplog):
    root = ff.make_mufac(tmp_path, train=64)
    with caplog.at_level(logging.WARNING):
        splits = load("mufac", root)
    names = pd.read_csv(tmp_path / mufac.RELEASE_DIR / "custom_train_dataset.csv").image_path.tolist()
    assert list(splits.forget.ids) == names[:10]  # round(1500 × 64 / 10025)
    assert list(splits.retain.ids) == names[10:]
    assert splits.notes["partial"] and "partial root" in caplog.text


def test_a_full_mufac_root_uses_the_pinned_forget_count(tmp_path):
    root = ff.make_mufac(tmp_path, train=14, val=4, test=4)
    rule = mufac.rule_manifest()
    for part, rows in (("train", 14), ("val", 4), ("test", 4)):
        rule["release"][part]["rows"] = rows  # this root now holds "the release"
    rule["roles"]["forget"]["count"] = 3
    found = mufac.listing(root, rule)
    assert not found.notes["partial"] and len(found.ids["forget"]) == 3 and len(found.ids["retain"]) == 11


def test_rafdb_layouts_give_the_same_split_in_greyscale(tmp_path):
    official = load("rafdb", ff.make_rafdb(tmp_path / "official"))
    folders = load("rafdb", ff.make_rafdb_folders(tmp_path / "folders"))
    assert official.split_hash == folders.split_hash
    for role in ROLES:
        assert official.role(role).ids == folders.role(role).ids
        assert torch.equal(official.role(role).labels, folders.role(role).labels)
        pixels = official.role(role).images
        assert torch.equal(pixels[:, 0], pixels[:, 1]) and torch.equal(pixels[:, 1], pixels[:, 2])


def test_mucac_splits_by_identity_and_reads_male_young_smiling(tmp_path):
    root = ff.make_celeba(tmp_path)
    gender, multi = load("mucac-gender", root), load("mucac-multi", root)
    identity = dict(line.split() for line in (root / "CelebA-HQ-identity.txt").read_text().splitlines())
    # the notebooks: forget 190–1250, retain 1250–4855, test < 190, unseen ≥ 4855; val: mubench's last 190
    # identities of their retain range
    ranges = {"test": (0, 190), "forget": (190, 1250), "retain": (1250, 4665), "val": (4665, 4855),
              "unseen": (4855, 10 ** 9)}
    lines = (root / "CelebA-HQ-attribute.txt").read_text().splitlines()
    header = lines[1].split()
    attributes = {f[0]: f[1:] for f in (line.split() for line in lines[2:])}
    assert multi.roles() == gender.roles() == ROLES + ("unseen",)
    for role in multi.roles():
        lo, hi = ranges[role]
        assert len(multi.role(role)) == ff.CELEBA_SMALL[role]
        assert all(lo <= int(identity[i]) < hi for i in multi.role(role).ids)
        expected = [[float(attributes[i][header.index(a)] == "1") for a in ("Male", "Young", "Smiling")]
                    for i in multi.role(role).ids]
        assert multi.role(role).labels.tolist() == expected
        assert gender.role(role).labels.tolist() == [int(e[0]) for e in expected]
    assert gender.split_hash == multi.split_hash


# --- decode once ------------------------------------------------------------------------------------------------

def count_decodes(monkeypatch) -> list:
    calls = []
    real = images.decode_image

    def counting(path, spec):
        calls.append(path)
        return real(path, spec)
    monkeypatch.setattr(images, "decode_image", counting)
    return calls


@pytest.mark.parametrize("task,builder", [("mufac", "mufac"), ("rafdb", "rafdb"), ("mucac-multi", "mucac-multi"),
                                          ("imagefolder", "imagefolder")])
def test_a_second_load_decodes_nothing(tmp_path, monkeypatch, decode_cache, task, builder):
    root = BUILDERS[builder](tmp_path / "root")
    before = sorted(p for p in root.rglob("*"))
    calls = count_decodes(monkeypatch)
    first = load(task, root)
    n = sum(len(first.role(r)) for r in first.roles())
    assert len(calls) == n
    second = load(task, root)
    assert len(calls) == n, "the second load decoded images again"
    assert "hit" in second.notes["decode_cache"] and second.split_hash == first.split_hash
    assert all(torch.equal(first.role(r).images, second.role(r).images) for r in first.roles())
    assert sorted(p for p in root.rglob("*")) == before, "the data root was written to"
    assert list(decode_cache.glob("*.pt"))


def test_a_rewritten_image_is_decoded_again(tmp_path, monkeypatch):
    root = ff.make_rafdb(tmp_path / "root")
    calls = count_decodes(monkeypatch)
    first = load("rafdb", root)
    n = len(calls)
    victim = next((root / "basic" / "Image" / "aligned").iterdir())
    ff.write_image(victim, 3, 24, seed=999)
    load("rafdb", root)
    assert len(calls) == 2 * n and first.split_hash


def test_check_prints_counts_and_histograms_per_role(tmp_path):
    result = check("mucac-multi", ff.make_celeba(tmp_path))
    assert result.exit_code == 0, result.output
    for role in ROLES + ("unseen",):
        assert f"\n{role:<8}{ff.CELEBA_SMALL[role]:>7}  " in result.output, role
    assert "Male:" in result.output and "partial root: yes" in result.output
    rafdb_result = check("rafdb", ff.make_rafdb(tmp_path / "rafdb"))
    assert rafdb_result.exit_code == 0 and "\nunseen" not in rafdb_result.output


# --- imagefolder ----------------------------------------------------------------------------------------------

def test_imagefolder_writes_a_stratified_manifest_once_and_reuses_it(tmp_path, decode_cache, caplog):
    root = ff.make_imagefolder(tmp_path / "root", classes=3, per_class=10)
    first = load("imagefolder", root)
    manifests = list(decode_cache.glob("imagefolder-*.json"))
    assert len(manifests) == 1 and manifests[0].with_suffix(".json.sha256").is_file()
    for role in ROLES:
        assert torch.bincount(first.role(role).labels, minlength=3).tolist().count(
            len(first.role(role)) // 3) == 3, role
    assert load("imagefolder", root).split_hash == first.split_hash and not caplog.text


def test_a_changed_image_folder_gets_a_new_split_said_in_one_line(tmp_path, decode_cache, caplog):
    """An image added or removed redraws the split (and its hash) instead of trapping the user with a manifest
    that names files they deleted."""
    root = ff.make_imagefolder(tmp_path / "root", classes=3, per_class=10)
    first = load("imagefolder", root)
    (manifest,) = decode_cache.glob("imagefolder-*.json")
    ff.write_image(root / "class_1" / "late_arrival.png", 1, 20, 5)
    with caplog.at_level(logging.WARNING):
        added = load("imagefolder", root)
    assert added.split_hash != first.split_hash
    assert "late_arrival.png" in {i.split("/")[-1] for role in ROLES for i in added.role(role).ids}
    assert [r.getMessage() for r in caplog.records if "changed since its split was drawn" in r.getMessage()] == [
        f"image folder {root} changed since its split was drawn (1 images added, 0 gone): the split is drawn again, "
        f"with a new split hash"]
    assert "late_arrival.png" in manifest.read_text()
    (root / "class_1" / "late_arrival.png").unlink()
    next(iter(sorted((root / "class_2").iterdir()))).unlink()
    removed = load("imagefolder", root)
    assert removed.split_hash not in (first.split_hash, added.split_hash) and len(removed.retain) + len(
        removed.forget) + len(removed.val) + len(removed.test) == 29


def test_a_corrupt_image_leaves_no_manifest_and_removing_it_is_enough(tmp_path, decode_cache):
    root = ff.make_imagefolder(tmp_path / "root", classes=3, per_class=10)
    broken = root / "class_0" / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    assert_user_error(check("imagefolder", root), "broken.png", "cannot be decoded")
    assert not list(decode_cache.glob("imagefolder-*.json"))
    broken.unlink()
    assert len(load("imagefolder", root).retain) > 0 and len(list(decode_cache.glob("imagefolder-*.json"))) == 1


def test_imagefolder_options_change_the_split_and_its_hash(tmp_path):
    from mubench.data.tasks import load_task
    from mubench.data.tasks import task_options
    root = ff.make_imagefolder(tmp_path / "root", classes=2, per_class=20)
    default = load_task("imagefolder", "default", root)[1]
    options = task_options(["imagefolder"], ["imagefolder.val=0.2", "imagefolder.forget=0.3", "imagefolder.seed=1",
                                             "imagefolder.size=32"])["imagefolder"]
    custom = load_task("imagefolder", "default", root, options=options)[1]
    assert custom.split_hash != default.split_hash and len(custom.val) == 8
    assert tuple(custom.retain.images.shape[1:]) == (3, 32, 32)
    size_only = task_options(["imagefolder"], ["imagefolder.size=48"])["imagefolder"]
    resized = load_task("imagefolder", "default", root, options=size_only)[1]
    assert resized.retain.ids == default.retain.ids and resized.split_hash != default.split_hash
    assert f"split hash: {resized.split_hash}" in check("imagefolder", root, "imagefolder.size=48").output


def test_the_retired_options_variable_is_refused_not_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv(imagefolder.RETIRED_VARIABLE, "size=48")
    assert_user_error(check("imagefolder", ff.make_imagefolder(tmp_path)), "--task-set imagefolder.size=48")


def test_imagefolder_train_test_layout_keeps_its_test_folder(tmp_path):
    splits = load("imagefolder", ff.make_imagefolder(tmp_path / "root", per_class=12, split=True))
    assert all(i.startswith("test/") for i in splits.test.ids)
    assert not any(i.startswith("test/") for r in ("retain", "forget", "val") for i in splits.role(r).ids)


@pytest.mark.parametrize("option,fragment", [("imagefolder.val=2", "val must be > 0 and < 1"), ("imagefolder.colour=1", "no field"),
                                             ("imagefolder.size=big", "size"), ("mufac.size=48", "not among"),
                                             ("imagefolder.size", "malformed")])
def test_imagefolder_bad_options(tmp_path, option, fragment):
    assert_user_error(check("imagefolder", ff.make_imagefolder(tmp_path), option), "--task-set", fragment)


def test_imagefolder_too_small_to_split(tmp_path):
    assert_user_error(check("imagefolder", ff.make_imagefolder(tmp_path, classes=2, per_class=2)), "too small")


# --- bad data roots: one sentence naming the file, exit 2, nothing trained -----------------------------------

def rewrite_csv(path: Path, change) -> None:
    frame = pd.read_csv(path, index_col=0)
    change(frame)
    frame.to_csv(path)


def mufac_csv(root: Path, part: str = "train") -> Path:
    return root / mufac.RELEASE_DIR / f"custom_{part}_dataset.csv"


def test_missing_root(tmp_path):
    assert_user_error(check("mufac", None), "--data-root", "MUBENCH_DATA")
    assert_user_error(check("rafdb", tmp_path / "nowhere"), "nowhere", "not a folder")


def test_missing_label_file(tmp_path):
    root = ff.make_mufac(tmp_path)
    mufac_csv(root, "val").unlink()
    assert_user_error(check("mufac", root), "custom_val_dataset.csv", "missing")
    celeba = ff.make_celeba(tmp_path / "celeba")
    (celeba / "CelebA-HQ-identity.txt").unlink()
    assert_user_error(check("mucac-gender", celeba), "CelebA-HQ-identity.txt", "missing", "'mucac-gender'")
    assert_user_error(check("mucac-multi", celeba), "CelebA-HQ-identity.txt", "missing", "'mucac-multi'")


def test_csv_with_other_columns(tmp_path):
    root = ff.make_mufac(tmp_path)
    pd.DataFrame({"filename": ["a.jpg"], "age": [3]}).to_csv(mufac_csv(root))
    assert_user_error(check("mufac", root), "custom_train_dataset.csv", "expected an unnamed index then family_id")


@pytest.mark.parametrize("dataset", ["mufac", "rafdb", "celeba"])
def test_label_outside_the_range(tmp_path, dataset):
    if dataset == "mufac":
        root = ff.make_mufac(tmp_path)
        rewrite_csv(mufac_csv(root, "test"), lambda f: f.__setitem__("age_class", ["z"] * len(f)))
        assert_user_error(check("mufac", root), "custom_test_dataset.csv", "'z'", "a–h")
    elif dataset == "rafdb":
        root = ff.make_rafdb(tmp_path)
        listing = root / "basic" / "EmoLabel" / "list_patition_label.txt"
        listing.write_text(listing.read_text().replace(" 2\n", " 9\n", 1))
        assert_user_error(check("rafdb", root), "list_patition_label.txt", "9", "1–7")
    else:
        root = ff.make_celeba(tmp_path)
        path = root / "CelebA-HQ-attribute.txt"
        lines = path.read_text().splitlines()
        lines[3] = lines[3].replace(" -1", " 0", 1)
        path.write_text("\n".join(lines) + "\n")
        assert_user_error(check("mucac-multi", root), "CelebA-HQ-attribute.txt", "line 4", "'0'")


def test_truncated_and_non_image_files(tmp_path):
    root = ff.make_mufac(tmp_path)
    victim = next((root / mufac.RELEASE_DIR / "train_images").iterdir())
    victim.write_bytes(victim.read_bytes()[:300])
    assert_user_error(check("mufac", root), victim.name, "cannot be decoded")
    other = ff.make_rafdb(tmp_path / "rafdb")
    fake = next((other / "basic" / "Image" / "aligned").iterdir())
    fake.write_text("not an image")
    assert_user_error(check("rafdb", other), fake.name, "cannot be decoded")


def test_an_unconvertible_mode_is_refused(tmp_path):
    root = ff.make_imagefolder(tmp_path)
    victim = root / "class_0" / "img_000.png"
    Image.new("I;16", (20, 20)).save(victim)
    assert_user_error(check("imagefolder", root), victim.name, "'I;16'", "8-bit")


def test_wrong_size_and_mode_are_converted_and_counted(tmp_path, caplog):
    root = ff.make_mufac(tmp_path)
    folder = root / mufac.RELEASE_DIR / "train_images"
    small, grey = sorted(folder.iterdir())[:2]
    ff.write_image(small, 0, size=64)
    ff.write_image(grey, 0, size=128, mode="L")
    with caplog.at_level(logging.WARNING):
        splits = load("mufac", root)
    assert splits.notes["images_resized_unusual"] == 1 and splits.notes["images_converted"] == 1
    assert "1 of 22 images were not 128×128" in caplog.text and "1 of 22 images were not RGB" in caplog.text
    again = load("mufac", root)  # a cache hit still reports what the first decode converted
    assert "hit" in again.notes["decode_cache"] and again.notes["images_converted"] == 1


def test_manifest_entry_missing_from_disk(tmp_path):
    root = ff.make_rafdb(tmp_path)
    gone = next((root / "basic" / "Image" / "aligned").iterdir())
    gone.unlink()
    assert_user_error(check("rafdb", root), gone.name, "missing from disk")


def test_disk_file_not_in_the_manifest_is_ignored_and_counted(tmp_path, caplog):
    root = ff.make_rafdb(tmp_path)
    ff.write_image(root / "basic" / "Image" / "aligned" / "train_09999_aligned.jpg", 1)
    (root / "basic" / "Image" / "aligned" / "notes.txt").write_text("scratch")
    with caplog.at_level(logging.WARNING):
        splits = load("rafdb", root)
    assert splits.notes["ignored_files"] == 2 and "2 files under" in caplog.text


def test_a_name_outside_the_release_is_refused(tmp_path):
    root = ff.make_rafdb(tmp_path)
    listing = root / "basic" / "EmoLabel" / "list_patition_label.txt"
    listing.write_text(listing.read_text() + "train_99999.jpg 3\n")
    assert_user_error(check("rafdb", root), "train_99999.jpg", "not in the RAF-DB basic release")


def test_overlapping_roles(tmp_path):
    root = ff.make_mufac(tmp_path)
    shared = pd.read_csv(mufac_csv(root)).image_path[5]
    rewrite_csv(mufac_csv(root, "val"), lambda f: f.__setitem__("image_path", [shared] + list(f.image_path[1:])))
    assert_user_error(check("mufac", root), shared, "both 'retain' and 'val'")
    folders = ff.make_rafdb_folders(tmp_path / "rafdb")
    first = next((folders / "DATASET" / "train" / "1").iterdir())
    ff.write_image(folders / "DATASET" / "train" / "4" / first.name, 4)
    assert_user_error(check("rafdb", folders), first.name.replace("_aligned", ""), "appears twice")


def test_a_family_outside_its_file_is_refused(tmp_path):
    root = ff.make_mufac(tmp_path)
    rewrite_csv(mufac_csv(root, "val"), lambda f: f.__setitem__("family_id", ["F0002"] * len(f)))
    assert_user_error(check("mufac", root), "custom_val_dataset.csv", "F0002", "F0801–F0850")


def test_identity_file_disagreeing_with_the_attribute_file(tmp_path):
    root = ff.make_celeba(tmp_path)
    path = root / "CelebA-HQ-identity.txt"
    path.write_text(path.read_text().replace("0.jpg", "29999.jpg", 1))
    assert_user_error(check("mucac-gender", root), "CelebA-HQ-identity.txt", "CelebA-HQ-attribute.txt", "'0.jpg'")


def test_attribute_count_line_disagreeing_with_its_rows(tmp_path):
    root = ff.make_celeba(tmp_path)
    path = root / "CelebA-HQ-attribute.txt"
    path.write_text("30000\n" + path.read_text().split("\n", 1)[1])
    assert_user_error(check("mucac-gender", root), "CelebA-HQ-attribute.txt", "declares 30000")


@pytest.mark.parametrize("task,builder,other", [("mufac", "rafdb", "rafdb"), ("rafdb", "mucac-gender", "mucac"),
                                                ("mucac-multi", "mufac", "mufac"), ("imagefolder", "mufac", "mufac"),
                                                ("imagefolder", "mucac-gender", "mucac")])
def test_a_data_root_of_another_task(tmp_path, task, builder, other):
    assert_user_error(check(task, BUILDERS[builder](tmp_path)), str(tmp_path), f"task {other}")


def test_run_with_a_bad_root_stops_before_training(tmp_path):
    root = ff.make_mufac(tmp_path / "root")
    mufac_csv(root, "test").unlink()
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--tasks", "mufac", "--data-root", str(root), "--methods", "original",
                                       "--out", str(out), "--quiet"])
    assert_user_error(result, "custom_test_dataset.csv")
    assert not list((out / "cache").rglob("*.pt")) if (out / "cache").exists() else True
    assert not (out / "leaderboards").exists() or not list((out / "leaderboards").iterdir())


# --- end to end -------------------------------------------------------------------------------------------------

E2E = {  # fixtures just large enough for the MIA's 10-fold split (≥ 10 forget and test images)
    "mufac": lambda root: ff.make_mufac(root, train=64, val=4, test=10),
    "rafdb": lambda root: ff.make_rafdb(root, train=40, test=10),  # DLFD's rule: val 4, retain 25, forget 11
    "mucac-gender": lambda root: ff.make_celeba(root, {"test": 10, "forget": 10, "retain": 12, "val": 4,
                                                       "unseen": 10}),
    "mucac-multi": lambda root: ff.make_celeba(root, {"test": 10, "forget": 10, "retain": 12, "val": 4,
                                                      "unseen": 10}),
}


def run_smoke(task: str, root: Path, out: Path, *options: str):
    result = CliRunner().invoke(main, ["run", "--tasks", task, "--data-root", str(root), "--preset", "smoke",
                                       "--methods", "original,retrain,finetune", "--out", str(out), "--quiet",
                                       *[word for option in options for word in ("--task-set", option)]])
    assert result.exit_code == 0, result.output + result.stderr
    boards = list((out / "leaderboards").glob("*.md"))
    assert boards, result.stderr
    text = "\n".join(b.read_text() for b in boards)
    for row in ("original", "retrain", "finetune"):
        assert row in text.lower()
    return text


@pytest.mark.slow  # ~20–45 s on 2 shared cores, most of it MLflow start-up
def test_imagefolder_end_to_end_at_32_pixels(tmp_path):
    run_smoke("imagefolder", ff.make_imagefolder(tmp_path / "root", classes=2, per_class=16), tmp_path / "out",
              "imagefolder.size=32", "imagefolder.test=0.4", "imagefolder.forget=0.5")


@pytest.mark.slow
@pytest.mark.parametrize("task", FACE_TASKS)
def test_face_task_end_to_end_at_128_pixels(tmp_path, task):
    text = run_smoke(task, E2E[task](tmp_path / "root"), tmp_path / "out")
    assert task in text


@pytest.mark.parametrize("task", ["digits", "fer2013-mini", "fer2013"])  # mucac and mufac pin rules, written by hand
def test_writing_a_committed_manifests_roles_gives_back_the_committed_file(task, tmp_path):
    """The format (key order, indentation, final newline) is part of the manifest's hash: regenerating a manifest
    from the same roles must reproduce the committed bytes and their recorded SHA-256."""
    from mubench.data.tasks import manifest_path, read_manifest, write_manifest
    roles, digest = read_manifest(task)
    copy = tmp_path / f"{task}.json"
    assert write_manifest(task, roles, copy) == digest
    assert copy.read_bytes() == manifest_path(task).read_bytes()
    assert copy.with_suffix(".json.sha256").read_text() == manifest_path(task).with_suffix(".json.sha256").read_text()


@pytest.mark.parametrize("fmt, side, drafted", [("JPEG", 64, True), ("JPEG", 31, False), ("PNG", 64, False)])
def test_only_a_jpeg_at_least_twice_the_target_size_is_decoded_at_a_reduced_scale(tmp_path, monkeypatch, fmt, side,
                                                                                 drafted):
    from PIL import JpegImagePlugin
    calls = []
    real = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size, *a: calls.append(size) or real(self, mode, size, *a))
    path = tmp_path / f"face.{fmt.lower()}"
    Image.new("RGB", (side, side), (200, 100, 50)).save(path, fmt)
    pixels, _, converted = images.decode_image(path, images.DecodeSpec(size=16))
    assert pixels.shape == (16, 16, 3) and not converted
    assert abs(pixels.reshape(-1, 3).mean(0) - (200, 100, 50)).max() < 3
    assert calls == ([(16, 16)] if drafted else [])
