"""The publishing workflow and the submissions workflow: every `mubench` command they run parses against the CLI,
they use only the allowed actions, the tests run before anything is tried or published, and the committed index of
leaderboards/ is the one `mubench leaderboard` would write."""
import shlex
from pathlib import Path

import click
import pytest
import yaml

from mubench.cli.main import main
from mubench.boards.leaderboard import render_index
from mubench.data.tasks import TASKS
from mubench.run.tune import read_preset

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "leaderboard.yml"
SUBMISSIONS = ROOT / ".github" / "workflows" / "submissions.yml"
ALLOWED_ACTIONS = {"actions/checkout", "actions/setup-python", "actions/upload-artifact",
                   "actions/upload-pages-artifact", "actions/deploy-pages"}


def _steps(path: Path = WORKFLOW):
    workflow = yaml.safe_load(path.read_text())
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _mubench_commands(path: Path = WORKFLOW) -> list[list[str]]:
    """Each `mubench ...` invocation in the steps' shell scripts, as argv without the program name."""
    commands = []
    for step in _steps(path):
        script = step.get("run", "").replace("\\\n", " ")
        for line in script.splitlines():
            for part in line.replace("&&", ";").replace("||", ";").split(";"):
                words = shlex.split(part, comments=True)
                if words and Path(words[0]).name == "mubench":
                    commands.append(words[1:])
    return commands


def _parse(argv: list[str]) -> click.Context:
    """Resolve the subcommand and parse its options the way click would, without running it."""
    group, command = click.Context(main, info_name="mubench"), main
    while True:  # down through the groups (`mubench submissions try`) to the command
        name, command, argv = command.resolve_command(group, argv)
        if not isinstance(command, click.Group):
            return command.make_context(name, argv, parent=group)
        group = click.Context(command, info_name=name, parent=group)


def test_workflow_runs_the_grid_and_renders_the_boards():
    subcommands = [argv[0] for argv in _mubench_commands()]
    assert {"run", "leaderboard"} <= set(subcommands), subcommands
    run = next(argv for argv in _mubench_commands() if argv[0] == "run")
    ctx = _parse(run)
    assert ctx.params["seeds"] == "0,1,2,3,4,5" and ctx.params["ablate"] and ctx.params["tasks"] == "digits"
    assert set(",".join(ctx.params["scenarios"]).split(",")) == {"random", "class:3"}


def _presets(offline: bool) -> list[Path]:
    """The committed presets of tasks the workflow can run (no data root) or of tasks it cannot (real faces)."""
    paths = sorted((ROOT / "leaderboards" / "presets").glob("*.json"))
    return [p for p in paths if TASKS.get(read_preset(p)["tuning"]["task"]).needs_data_root != offline]


def test_every_committed_tuned_preset_is_run_on_the_scenario_it_was_tuned_on_with_every_method_it_tunes():
    """The published boards' tuned rows come from leaderboards/presets/: CI reruns each one where it was tuned."""
    runs = [_parse(argv) for argv in _mubench_commands() if argv[0] == "run"]
    presets = _presets(offline=True)
    assert presets
    for path in presets:
        tuning, methods = read_preset(path)["tuning"], read_preset(path)["methods"]
        (ctx,) = [c for c in runs if c.params["preset_from"] is not None and c.params["preset_from"].name == path.name]
        assert set(ctx.params["methods"].split(",")) == set(methods)
        assert ",".join(ctx.params["scenarios"]) == tuning["scenario"] and ctx.params["tasks"] == tuning["task"]
        assert ctx.params["seeds"] == "0,1,2,3,4,5" and not set(tuning["seeds"]) & set(range(6))  # tuned elsewhere


def _documented_runs(*paths: Path) -> list[click.Context]:
    """The indented `mubench run` commands of markdown files (a trailing backslash continues a line), parsed."""
    text = "\n".join(path.read_text() for path in paths).replace("\\\n", " ")
    lines = [line.split("#")[0].split()[1:] for line in text.splitlines() if line.startswith("    mubench run ")]
    return [_parse(argv) for argv in lines]


def test_a_preset_of_a_task_that_needs_data_is_run_by_a_documented_command_with_every_method_it_tunes():
    """CI has no face data: a real-face preset's rows are reproduced by the command the README or its board gives."""
    for path in _presets(offline=False):
        tuning, methods = read_preset(path)["tuning"], read_preset(path)["methods"]
        board = ROOT / "leaderboards" / f"{tuning['task']}-{tuning['backbone']}.md"
        runs = _documented_runs(ROOT / "README.md", board)
        named = [c for c in runs if c.params["preset_from"] is not None and c.params["preset_from"].name == path.name]
        assert named, f"no documented mubench run applies {path.name}"
        for ctx in named:
            assert set(ctx.params["methods"].split(",")) == set(methods) and ctx.params["tasks"] == tuning["task"]
            assert (",".join(ctx.params["scenarios"]) or "random") == tuning["scenario"]  # random when not given
            assert not set(tuning["seeds"]) & {int(s) for s in ctx.params["seeds"].split(",")}  # tuned elsewhere


def test_the_tests_pass_before_anything_is_run_or_published():
    names = [step.get("name", "") for step in _steps()]
    scripts = [step.get("run", "") for step in _steps()]
    tests = next(i for i, script in enumerate(scripts) if script.strip() == ".venv/bin/pytest")
    first_grid = next(i for i, script in enumerate(scripts) if "mubench run" in script)
    publish = next(i for i, name in enumerate(names) if name.startswith("Commit"))
    assert tests < first_grid < publish
    assert "if" not in _steps()[tests]  # a failing test stops the job


@pytest.mark.parametrize("argv", _mubench_commands() + _mubench_commands(SUBMISSIONS), ids=lambda argv: " ".join(argv))
def test_every_mubench_command_in_the_workflow_parses(argv):
    _parse(argv)  # raises click.UsageError (NoSuchOption, BadParameter, ...) on what the CLI does not accept


def test_the_parser_rejects_what_the_cli_lacks():
    with pytest.raises(click.UsageError):
        _parse(["run", "--no-such-option"])
    with pytest.raises(click.UsageError):
        _parse(["publish"])


@pytest.mark.parametrize("path", [WORKFLOW, SUBMISSIONS], ids=lambda path: path.name)
def test_only_the_allowed_actions_are_used(path):
    used = {step["uses"].split("@")[0] for step in _steps(path) if "uses" in step}
    assert used <= ALLOWED_ACTIONS, used - ALLOWED_ACTIONS


def test_the_grid_runs_the_submitted_methods_that_passed_their_install_and_kit():
    commands = _mubench_commands()
    install = next(i for i, argv in enumerate(commands) if argv[:2] == ["submissions", "install"])
    grid = next(i for i, argv in enumerate(commands) if argv[0] == "run")
    assert install < grid
    written = _parse(commands[install]).params
    assert _parse(commands[grid]).params["methods"] == f"$(cat {written['methods_out']})"
    tuned = [_parse(argv).params for argv in commands if argv[0] == "run" and "--preset-from" in argv
             and "$methods" in argv]  # the submissions' presets (the built-ins' have a test of their own)
    assert tuned and f"< {written['tuned_out']}" in next(s["run"] for s in _steps() if "--preset-from" in s.get("run", ""))
    grid_params = _parse(commands[grid]).params
    assert all({k: p[k] for k in ("seeds", "ablate", "scenarios", "out")} ==
               {k: grid_params[k] for k in ("seeds", "ablate", "scenarios", "out")} for p in tuned)
    assert "leaderboards/submissions.toml" in yaml.safe_load(WORKFLOW.read_text())[True]["push"]["paths"]


def test_a_pull_request_submission_is_tested_checked_and_tried_but_never_published():
    workflow = yaml.safe_load(SUBMISSIONS.read_text())
    assert workflow[True]["pull_request"]["paths"] == ["leaderboards/submissions.toml"]  # YAML 1.1 reads `on` as True
    assert workflow["permissions"] == {"contents": "read"}
    scripts = [step.get("run", "") for step in _steps(SUBMISSIONS)]
    assert not any("git push" in script or "git commit" in script for script in scripts)
    tests = next(i for i, script in enumerate(scripts) if script.strip() == ".venv/bin/pytest")
    check = next(i for i, script in enumerate(scripts) if "mubench submissions check" in script)
    tried = next(i for i, script in enumerate(scripts) if "mubench submissions try" in script)
    assert tests < check < tried and "if" not in _steps(SUBMISSIONS)[tests]
    argv = next(argv for argv in _mubench_commands(SUBMISSIONS) if argv[:2] == ["submissions", "try"])
    params = _parse(argv).params
    assert params["preset"] == "default" and params["seeds"] == "0,1,2" and params["only_changed_from"]
    assert not params["allow_local"]
    upload = next(step for step in _steps(SUBMISSIONS) if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"].startswith(str(params["out"]))


def test_publishing_commits_the_boards_with_git_only():
    publish = next(step["run"] for step in _steps() if "git push" in step.get("run", ""))
    assert "git add leaderboards/*.md" in publish
    assert "if" not in next(step for step in _steps() if "git push" in step.get("run", "")), \
        "publishing must run only when the grid (and so every earlier step) succeeded"


def test_committed_leaderboard_index_is_current():
    folder = ROOT / "leaderboards"
    assert (folder / "README.md").read_text() == render_index(folder), (
        "leaderboards/README.md is stale; rewrite it with: .venv/bin/python -c "
        "\"from mubench.boards.leaderboard import write_index; write_index('leaderboards')\"")


def test_the_board_site_is_rendered_and_deployed_to_pages_only_after_the_boards_are_published():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    render = next(words for words in _mubench_commands() if words[0] == "leaderboard")
    site = render[render.index("--html") + 1]
    steps = workflow["jobs"]["leaderboard"]["steps"]
    names = [step.get("uses", "").split("@")[0] or step.get("run", "") for step in steps]
    upload = names.index("actions/upload-pages-artifact")
    assert steps[upload]["with"]["path"] == site and "if" not in steps[upload]
    assert upload > next(i for i, step in enumerate(steps) if "git push" in step.get("run", ""))
    pages = workflow["jobs"]["pages"]
    assert pages["needs"] == "leaderboard" and pages["permissions"] == {"pages": "write", "id-token": "write"}
    assert [step["uses"].split("@")[0] for step in pages["steps"]] == ["actions/deploy-pages"]
