"""The publishing workflow: every `mubench` command it runs parses against the CLI, it uses only the allowed
actions, and the committed index of leaderboards/ is the one `mubench leaderboard` would write."""
import shlex
from pathlib import Path

import click
import pytest
import yaml

from mubench.cli.main import main
from mubench.boards.leaderboard import render_index

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "leaderboard.yml"
ALLOWED_ACTIONS = {"actions/checkout", "actions/setup-python", "actions/upload-artifact"}


def _steps():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _mubench_commands() -> list[list[str]]:
    """Each `mubench ...` invocation in the steps' shell scripts, as argv without the program name."""
    commands = []
    for step in _steps():
        script = step.get("run", "").replace("\\\n", " ")
        for line in script.splitlines():
            for part in line.replace("&&", ";").replace("||", ";").split(";"):
                words = shlex.split(part, comments=True)
                if words and Path(words[0]).name == "mubench":
                    commands.append(words[1:])
    return commands


def _parse(argv: list[str]) -> click.Context:
    """Resolve the subcommand and parse its options the way click would, without running it."""
    group = click.Context(main, info_name="mubench")
    name, command, rest = main.resolve_command(group, argv)
    return command.make_context(name, rest, parent=group)


def test_workflow_runs_the_grid_and_renders_the_boards():
    subcommands = [argv[0] for argv in _mubench_commands()]
    assert {"run", "leaderboard"} <= set(subcommands), subcommands
    run = next(argv for argv in _mubench_commands() if argv[0] == "run")
    ctx = _parse(run)
    assert ctx.params["seeds"] == "0,1,2,3,4,5" and ctx.params["ablate"] and ctx.params["tasks"] == "digits"
    assert set(",".join(ctx.params["scenarios"]).split(",")) == {"random", "class:3"}


def test_the_tests_pass_before_anything_is_run_or_published():
    names = [step.get("name", "") for step in _steps()]
    scripts = [step.get("run", "") for step in _steps()]
    tests = next(i for i, script in enumerate(scripts) if script.strip() == ".venv/bin/pytest")
    first_grid = next(i for i, script in enumerate(scripts) if "mubench run" in script)
    publish = next(i for i, name in enumerate(names) if name.startswith("Commit"))
    assert tests < first_grid < publish
    assert "if" not in _steps()[tests]  # a failing test stops the job


@pytest.mark.parametrize("argv", _mubench_commands(), ids=lambda argv: " ".join(argv))
def test_every_mubench_command_in_the_workflow_parses(argv):
    _parse(argv)  # raises click.UsageError (NoSuchOption, BadParameter, ...) on what the CLI does not accept


def test_the_parser_rejects_what_the_cli_lacks():
    with pytest.raises(click.UsageError):
        _parse(["run", "--no-such-option"])
    with pytest.raises(click.UsageError):
        _parse(["publish"])


def test_only_the_allowed_actions_are_used():
    used = {step["uses"].split("@")[0] for step in _steps() if "uses" in step}
    assert used <= ALLOWED_ACTIONS, used - ALLOWED_ACTIONS


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
