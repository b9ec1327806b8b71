"""leaderboards/submissions.toml: `mubench submissions check` refuses each bad entry in one sentence, and
`mubench submissions try` plays the pull request's steps on real plugin distributions, leaving a failing one off the
boards with its reasons."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from mubench.boards import submissions as subs
from mubench.run.tune import FORMAT, read_preset

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).parent / "plugins"
MUBENCH = Path(sys.executable).parent / "mubench"
SHA = "0123456789abcdef0123456789abcdef01234567"
GOOD = '''
[[submission]]
requirement = "mubench-demo-plugin==0.1.0"
methods = ["demo-retain-sgd"]
contact = "@octocat"
'''


def mubench(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([str(MUBENCH), *args], capture_output=True, text=True, env=env, timeout=900)


def preset(folder: Path, name: str, methods: dict) -> str:
    """A tuned-preset file in the form `mubench tune` writes; its name."""
    (folder / name).write_text(json.dumps({"format": FORMAT, "tuning": {}, "methods": methods}))
    return name


def entry(**fields) -> str:
    return "\n[[submission]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in fields.items())


def second(**changes) -> dict:
    fields = {"requirement": "my-plugin==1.2.3", "methods": ["my-method"], "contact": "me@example.org"}
    return {k: v for k, v in {**fields, **changes}.items() if v is not None}


# Each rule: the second entry's fields, the bad value the sentence names, and what it says is valid.
BAD = {
    "missing field": (second(contact=None), "'contact'", "requirement, methods and contact"),
    "unknown field": (second(homepage="https://example.org"), "'homepage'", "valid fields are"),
    "version range": (second(requirement="my-plugin>=1.2"), "'my-plugin>=1.2'", "exact version (my-package==1.2.3)"),
    "compatible release": (second(requirement="my-plugin~=1.2"), "'my-plugin~=1.2'", "exact version"),
    "bare name": (second(requirement="my-plugin"), "'my-plugin'", "exact version"),
    "short commit": (second(requirement="my-plugin @ git+https://github.com/o/r@0123abc"),
                     "'my-plugin @ git+https://github.com/o/r@0123abc'", "40-hex commit"),
    "branch": (second(requirement="my-plugin @ git+https://github.com/o/r@main"),
               "'my-plugin @ git+https://github.com/o/r@main'", "40-hex commit"),
    "tag": (second(requirement="my-plugin @ git+https://github.com/o/r@v1.2.3"),
            "'my-plugin @ git+https://github.com/o/r@v1.2.3'", "40-hex commit"),
    "plain git URL": (second(requirement="my-plugin @ git+https://github.com/o/r"),
                      "'my-plugin @ git+https://github.com/o/r'", "40-hex commit"),
    "local path": (second(requirement="my-plugin @ ./my-plugin"), "'my-plugin @ ./my-plugin'", "--allow-local"),
    "built-in name": (second(methods=["scrub"]), "'scrub'", "another name"),
    "another entry's name": (second(methods=["demo-retain-sgd"]), "'demo-retain-sgd'", "submission 1"),
    "same distribution": (second(requirement="mubench_demo.plugin==0.2.0"), "'mubench-demo-plugin'", "once"),
    "invalid method name": (second(methods=["My Method"]), "'My Method'", "lowercase letters, digits"),
    "method listed twice": (second(methods=["my-method", "my-method"]), "'my-method'", "once"),
    "no methods": (second(methods=[]), "[]", "non-empty list"),
    "missing preset": (second(preset="presets/none.json"), "'presets/none.json'", "written by `mubench tune`"),
    "preset not from tune": (second(preset="not-a-preset.json"), "'not-a-preset.json'", "written by `mubench tune`"),
    "preset of another method": (second(preset="finetune.json"), "'finetune.json'", "its own methods (my-method)"),
    "contact not an address": (second(contact="someone"), "'someone'", "GitHub handle (@octocat)"),
    "contact without a domain": (second(contact="me@example"), "'me@example'", "email address"),
}


@pytest.mark.parametrize("fields, value, valid", BAD.values(), ids=BAD.keys())
def test_check_refuses_each_bad_entry_in_one_sentence(cli, tmp_path, fields, value, valid):
    (tmp_path / "not-a-preset.json").write_text(json.dumps({"hello": "world"}))
    preset(tmp_path, "finetune.json", {"finetune": {"set": {"lr": "0.01"}}})
    file = tmp_path / "submissions.toml"
    file.write_text(GOOD + entry(**fields))
    result = cli("submissions", "check", str(file))
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: submission 2 ") and errors[0].endswith("."), errors
    assert value in errors[0] and valid in errors[0] and "Traceback" not in result.stderr
    assert result.stdout.splitlines() == ["ok: submission 1 (mubench-demo-plugin): mubench-demo-plugin==0.1.0 "
                                          "provides demo-retain-sgd; contact @octocat"]


def test_check_prints_every_bad_entry(cli, tmp_path):
    file = tmp_path / "submissions.toml"
    file.write_text(entry(**second(requirement="a>=1")) + entry(**second(requirement="b==1.0", methods=["finetune"])))
    result = cli("submissions", "check", str(file))
    assert result.exit_code == 2
    assert [line.split(":")[1] for line in result.stderr.splitlines()] == [" submission 1 (a)", " submission 2 (b)"]


def test_check_accepts_good_entries_one_line_each(cli, tmp_path):
    tuned = preset(tmp_path, "tuned.json", {"other-method": {"set": {"lr": "0.01"}}})
    file = tmp_path / "submissions.toml"
    file.write_text(GOOD + entry(requirement=f"my_Plugin @ git+https://github.com/me/my-plugin@{SHA}",
                                 methods=["my-method", "other-method"], contact="me@example.org", preset=tuned))
    result = cli("submissions", "check", str(file))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("ok: submission 1 (mubench-demo-plugin): ")
    assert lines[1].startswith("ok: submission 2 (my-plugin): ") and "my-method, other-method" in lines[1]
    assert "preset tuned.json" in lines[1] and "me@example.org" in lines[1]


def test_the_committed_file_is_documented_and_lists_no_submission_yet(cli, monkeypatch):
    text = (ROOT / "leaderboards" / "submissions.toml").read_text()
    assert tomllib.loads(text) == {}
    assert all(f"#   {field}" in text for field in ("requirement", "methods", "contact", "preset"))
    monkeypatch.chdir(ROOT)
    result = cli("submissions", "check")  # the default file
    assert result.exit_code == 0 and result.stdout.strip() == "leaderboards/submissions.toml lists no submission."


@pytest.mark.parametrize("text, says", [("[[submission]\n", "is not valid TOML"),
                                        ("title = 'x'\n", "top-level key 'title'")])
def test_a_malformed_file_is_one_sentence(cli, tmp_path, text, says):
    file = tmp_path / "submissions.toml"
    file.write_text(text)
    result = cli("submissions", "check", str(file))
    assert result.exit_code == 2 and says in result.stderr and len(result.stderr.splitlines()) == 1


def test_only_the_new_or_changed_entries_are_tried(cli, tmp_path):
    one, two = entry(**second()), entry(**second(requirement="b==1.0", methods=["b-method"]))
    (tmp_path / "base.toml").write_text(one + two)
    (tmp_path / "pr.toml").write_text(one + entry(**second(requirement="b==1.1", methods=["b-method"]))
                                      + entry(**second(requirement="c==1.0", methods=["c-method"])))
    good, _ = subs.read(tmp_path / "pr.toml", read_preset)
    picked = subs.changed(good, subs.load_tables(tmp_path / "pr.toml"), subs.load_tables(tmp_path / "base.toml"))
    assert [s.requirement for s in picked] == ["b==1.1", "c==1.0"]
    result = cli("submissions", "try", str(tmp_path / "base.toml"), "--out", str(tmp_path / "out"),
                 "--only-changed-from", str(tmp_path / "base.toml"))
    assert result.exit_code == 0 and "lists no new or changed submission" in result.stdout
    assert not (tmp_path / "out").exists()


# Playing the pull request's steps on real distributions ---------------------------------------------------------

@pytest.fixture(scope="module")
def good_plugin(tmp_path_factory) -> Path:
    """tests/plugins/good as submitted. Its demo-retain-sgd types `lr: float`, with no range, which the kit's
    ranges check refuses; until the example declares one, the copy submitted here types it `Rate`."""
    copy = tmp_path_factory.mktemp("plugins") / "good"
    shutil.copytree(PLUGINS / "good", copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    module = copy / "src" / "mubench_demo_plugin" / "__init__.py"
    text = module.read_text()
    if "lr: float = 1e-3" in text:
        module.write_text(text.replace("lr: float = 1e-3", "lr: Rate = 1e-3").replace(
            "from mubench.core.losses import task_loss\n",
            "from mubench.core.losses import task_loss\nfrom mubench.core.ranges import Rate\n"))
    return copy


@pytest.fixture(scope="module")
def late_plugin(tmp_path_factory) -> Path:
    """A distribution whose method passes the kit (toy cells of 96 retain images) and fails every real cell."""
    root = tmp_path_factory.mktemp("plugins") / "late"
    (root / "mubench_late_plugin").mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent('''\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "mubench-late-plugin"
        version = "0.3.0"
        dependencies = []

        [project.entry-points."mubench.methods"]
        demo-fails-at-scale = "mubench_late_plugin:FailsAtScale"
        '''))
    (root / "mubench_late_plugin" / "__init__.py").write_text(textwrap.dedent('''\
        from mubench import Unlearner, register_method


        @register_method("demo-fails-at-scale")
        class FailsAtScale(Unlearner):
            """Keeps the model on the kit's toy cells; refuses a retain set of more than 200 images."""

            def unlearn(self, model, data, ctx):
                if len(data.retain) > 200:
                    raise RuntimeError(f"{len(data.retain)} retain images are too many")
                return model
        '''))
    return root


def version(plugin: Path) -> tuple[str, str]:
    project = tomllib.loads((plugin / "pyproject.toml").read_text())["project"]
    return project["name"], project["version"]


def test_try_publishes_a_passing_submission_and_leaves_failing_ones_off_with_their_reasons(tmp_path, good_plugin,
                                                                                           late_plugin):
    file = tmp_path / "submissions.toml"
    file.write_text(entry(requirement=f"mubench-demo-plugin @ {good_plugin}", methods=["demo-retain-sgd"],
                          contact="@octocat")
                    + entry(requirement=f"mubench-failing-plugin @ {PLUGINS / 'failing'}",
                            methods=["demo-nan-loss", "demo-raises"], contact="someone@example.org")
                    + entry(requirement="mubench-late-plugin @ late", methods=["demo-fails-at-scale"],
                            contact="@late"))
    shutil.copytree(late_plugin, tmp_path / "late")  # a path relative to the submissions file
    out = tmp_path / "out"
    result = mubench("submissions", "try", str(file), "--out", str(out), "--allow-local", "--preset", "smoke",
                     "--seeds", "0", "--threads", "1", "--workers", "1")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stdout.splitlines() == [
        f"passed: submission 1 (mubench-demo-plugin): boards in {out / 'leaderboards' / 'mubench-demo-plugin'}"]
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert failed[:2] == [
        "failed: submission 2 (mubench-failing-plugin): demo-nan-loss fails the conformance kit: MubenchError: "
        "method 'demo-nan-loss' logged non-finite values of loss.",
        "failed: submission 2 (mubench-failing-plugin): demo-raises fails the conformance kit: RuntimeError: "
        "deliberate failure inside unlearn"]
    assert re.fullmatch(r"failed: submission 3 \(mubench-late-plugin\): smoke run: demo-fails-at-scale on "
                        r"digits/resnet18 seed 0: RuntimeError: \d+ retain images are too many", failed[2]), failed
    assert len(failed) == 3 and "2 of 3 submission(s) failed" in result.stderr

    boards = sorted(path.relative_to(out / "leaderboards") for path in (out / "leaderboards").rglob("*.md"))
    assert boards == [Path("mubench-demo-plugin/README.md"), Path("mubench-demo-plugin/digits-resnet18-smoke.md")]
    board = (out / "leaderboards" / "mubench-demo-plugin" / "digits-resnet18-smoke.md").read_text()
    rows = [line for line in board.splitlines() if line.startswith("| ")]
    assert any(row.split("|")[2].strip().split()[0] == "demo-retain-sgd" for row in rows[1:])
    name, number = version(good_plugin)
    assert f"Plugin methods (package and version): demo-retain-sgd: {name} {number}." in board
    for text in (path.read_text() for path in (out / "leaderboards").rglob("*") if path.is_file()):
        assert "demo-nan-loss" not in text and "demo-fails-at-scale" not in text  # not even as a failed cell
    # the failed run's cells are in its own store, which no published board reads
    assert (out / "stores" / "mubench-late-plugin" / "mlflow.db").exists()


def test_install_keeps_the_submissions_that_pass_and_uninstalls_the_rest(tmp_path, good_plugin):
    """The main workflow's step, in a venv of its own so this environment is left alone."""
    python = str(subs.make_venv(tmp_path / "venv"))
    file = tmp_path / "submissions.toml"
    file.write_text(entry(requirement=f"mubench-demo-plugin @ {good_plugin}", methods=["demo-retain-sgd"],
                          contact="@octocat", preset=preset(tmp_path, "tuned.json",
                                                            {"demo-retain-sgd": {"set": {"lr": "0.01"}}}))
                    + entry(requirement=f"mubench-failing-plugin @ {PLUGINS / 'failing'}", methods=["demo-raises"],
                            contact="@someone"))
    result = subprocess.run([python, "-c", subs.CLI, "submissions", "install", str(file), "--allow-local",
                             "--methods-out", str(tmp_path / "methods.txt"), "--tuned-out", str(tmp_path / "tuned.tsv")],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["left off: submission 2 (mubench-failing-plugin): demo-raises fails the "
                                          "conformance kit: RuntimeError: deliberate failure inside unlearn"]
    assert result.stdout.startswith("installed: submission 1 (mubench-demo-plugin): ")
    assert (tmp_path / "methods.txt").read_text().strip().split(",") == subs.builtin_methods()
    assert (tmp_path / "tuned.tsv").read_text() == f"demo-retain-sgd\t{tmp_path / 'tuned.json'}\n"
    listed = subprocess.run([python, "-c", subs.CLI, "ls", "methods"], capture_output=True, text=True)
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert "demo-retain-sgd" in names and "demo-raises" not in names
    here = subprocess.run([str(MUBENCH), "ls", "methods"], capture_output=True, text=True).stdout
    assert "demo-retain-sgd" not in here  # installed into the venv only
