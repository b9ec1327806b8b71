"""leaderboards/submissions.toml: the methods submitted as plugins, checked before anything is installed, then tried
(installed, put through the conformance kit and run) in a venv of their own or in the current environment."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path

from mubench.core.errors import MubenchError, RegistryError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

DEFAULT = Path("leaderboards/submissions.toml")
FIELDS = ("requirement", "methods", "contact", "preset")
REQUIRED = FIELDS[:3]
DIST = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
PINNED = re.compile(rf"({DIST})==([0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?)")
GIT = re.compile(rf"({DIST})\s*@\s*git\+https://[^\s@#]+@[0-9a-fA-F]{{40}}(?:#subdirectory=[\w./-]+)?")
LOCAL = re.compile(rf"({DIST})\s*@\s*(?:file://)?(?![A-Za-z][A-Za-z0-9+.-]*:)(\S+)")  # a path, not a URL
METHOD = re.compile(r"[a-z0-9][a-z0-9_+-]*")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
HANDLE = re.compile(r"@[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}")
PINNED_FORMS = ("an exact version (my-package==1.2.3) or a commit of a public git repository "
                "(my-package @ git+https://github.com/owner/repo@<40-hex commit>)")


def normal(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Submission:
    index: int
    requirement: str
    dist: str  # normalised distribution name
    methods: tuple[str, ...]
    contact: str
    preset: Path | None = None
    local: Path | None = None  # a local folder or file to install (only with allow_local)

    @property
    def label(self) -> str:
        return f"submission {self.index} ({self.dist})"

    @property
    def pip_target(self) -> str:
        return str(self.local) if self.local else self.requirement


def builtin_methods() -> list[str]:
    """The methods mubench itself declares: every registered name that no installed distribution's entry point gives."""
    from importlib.metadata import entry_points
    from mubench.unlearn.api import METHODS
    return sorted(set(METHODS.names()) - {ep.name for ep in entry_points(group="mubench.methods")})


def load_tables(path: Path) -> list[dict]:
    """The raw `[[submission]]` tables of a submissions file."""
    if tomllib is None:
        raise MubenchError("reading a submissions file needs Python 3.11 or the tomli package; pip install tomli.")
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise MubenchError(f"submissions file {str(path)!r} cannot be read ({exc.strerror or exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise MubenchError(f"submissions file {str(path)!r} is not valid TOML ({exc}).") from None
    extra = sorted(set(data) - {"submission"})
    if extra:
        raise MubenchError(f"submissions file {str(path)!r} has the top-level key {extra[0]!r}; it holds only "
                           f"[[submission]] tables.")
    tables = data.get("submission", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise MubenchError(f"submissions file {str(path)!r}: 'submission' must be [[submission]] tables.")
    return tables


def read(path: Path, read_preset, allow_local: bool = False) -> tuple[list[Submission], list[str]]:
    """The good submissions of the file and one sentence per bad one. `read_preset` is mubench.run.tune's (a layer
    above this one): it checks a preset's form."""
    good, problems, taken = [], [], {name: "a built-in method" for name in builtin_methods()}
    dists: dict[str, str] = {}
    for index, table in enumerate(load_tables(path), 1):
        try:
            entry = _entry(index, table, Path(path).parent, allow_local, read_preset)
            for name in entry.methods:
                if name in taken:
                    raise MubenchError(f"{entry.label}: method {name!r} clashes with {taken[name]}; give the entry "
                                       f"point another name.")
            if entry.dist in dists:
                raise MubenchError(f"{entry.label}: distribution {entry.dist!r} is already submitted by "
                                   f"{dists[entry.dist]}; list each distribution once.")
        except MubenchError as exc:
            problems.append(str(exc))
            continue
        taken.update({name: entry.label for name in entry.methods})
        dists[entry.dist] = entry.label
        good.append(entry)
    return good, problems


def _entry(index: int, table: dict, base: Path, allow_local: bool, read_preset) -> Submission:
    where = f"submission {index}"
    requirement = table.get("requirement")
    if isinstance(requirement, str):
        name = re.match(DIST, requirement.strip())
        where += f" ({normal(name.group(0))})" if name else ""
    for field in REQUIRED:
        if field not in table:
            raise MubenchError(f"{where} lacks the field {field!r}; each submission gives requirement, methods and "
                               f"contact (preset is optional).")
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise MubenchError(f"{where} has the unknown field {unknown[0]!r}; valid fields are {', '.join(FIELDS)}.")
    if not isinstance(requirement, str):
        raise MubenchError(f"{where}: requirement {requirement!r} is not a string; give {PINNED_FORMS}.")
    requirement = requirement.strip()
    local = None
    form = PINNED.fullmatch(requirement) or GIT.fullmatch(requirement)
    if form is None and allow_local and LOCAL.fullmatch(requirement):
        form = LOCAL.fullmatch(requirement)
        local = (base / form.group(2)).resolve()  # relative to the submissions file
        if not local.exists():
            raise MubenchError(f"{where}: requirement {requirement!r} names the local path {str(local)!r}, which "
                               f"does not exist.")
    if form is None:
        local_hint = "; a local path needs --allow-local, which CI never passes" if LOCAL.fullmatch(requirement) else ""
        raise MubenchError(f"{where}: requirement {requirement!r} is not pinned; give {PINNED_FORMS}{local_hint}.")
    methods = table["methods"]
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise MubenchError(f"{where}: methods {methods!r} is not a non-empty list of entry-point names "
                           f"(e.g. [\"my-method\"]).")
    for name in methods:
        if not METHOD.fullmatch(name):
            raise MubenchError(f"{where}: method {name!r} is not a valid method name; use lowercase letters, digits, "
                               f"'-', '_' and '+', starting with a letter or digit (e.g. my-method).")
        if methods.count(name) > 1:
            raise MubenchError(f"{where}: method {name!r} is listed twice; list each method once.")
    contact = table["contact"]
    if not isinstance(contact, str) or not (EMAIL.fullmatch(contact) or HANDLE.fullmatch(contact)):
        raise MubenchError(f"{where}: contact {contact!r} is neither an email address (name@example.org) nor a GitHub "
                           f"handle (@octocat).")
    preset = table.get("preset")
    if preset is not None:
        preset = _preset(where, preset, base, methods, read_preset)
    return Submission(index, requirement, normal(form.group(1)), tuple(methods), contact, preset, local)


def _preset(where: str, given, base: Path, methods: list[str], read_preset) -> Path:
    """The preset's path, checked: a file `mubench tune` wrote that tunes only the submission's own methods."""
    if not isinstance(given, str) or not (base / given).is_file():
        raise MubenchError(f"{where}: preset {given!r} is not a file; give the path of a tuned-preset JSON written by "
                           f"`mubench tune`, relative to the submissions file.")
    path = (base / given).resolve()
    try:
        read_preset(path)
    except RegistryError:  # it names the submission's own methods, not installed here; the rest is checked below
        pass
    except MubenchError as exc:
        raise MubenchError(f"{where}: preset {given!r} is refused: {str(exc).rstrip('.')}.") from None
    tuned = json.loads(path.read_text())["methods"]
    others = sorted(set(tuned) - set(methods))
    if others or not tuned or not all(isinstance(e, dict) and isinstance(e.get("set"), dict) for e in tuned.values()):
        raise MubenchError(f"{where}: preset {given!r} tunes {', '.join(sorted(tuned)) or 'no method'}; a submission's "
                           f"preset gives a \"set\" mapping for some of its own methods ({', '.join(methods)}) only.")
    return path


def changed(submissions: list[Submission], tables: list[dict], base_tables: list[dict]) -> list[Submission]:
    """The submissions whose table is not in the base file (new or edited)."""
    return [s for s in submissions if tables[s.index - 1] not in base_tables]


# Trying a submission ------------------------------------------------------------------------------------------------

KIT = """\
import re, sys
from importlib.metadata import entry_points
from mubench.kits.method_kit import check_method
dist, names = sys.argv[1], sys.argv[2:]
given = {ep.name: re.sub(r"[-_.]+", "-", ep.dist.name).lower() for ep in entry_points(group="mubench.methods") if ep.dist}
failed = 0
for name in names:
    if given.get(name) != dist:
        print(f"{name} is not an entry point of {dist} in the mubench.methods group"); failed = 1; continue
    try:
        check_method(name)
    except Exception as exc:
        print(f"{name} fails the conformance kit: {type(exc).__name__}: {exc}".splitlines()[0]); failed = 1
sys.exit(failed)
"""
CLI = "import sys; from mubench.cli import main; sys.argv[0] = 'mubench'; main()"


def _call(argv: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # each store is its own sqlite file
    return subprocess.run(argv, capture_output=True, text=True, env=env)


def _last_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {result.returncode}"


def make_venv(folder: Path) -> Path:
    """A venv on top of this environment (torch and mubench from here, its own site-packages first); its python."""
    venv.EnvBuilder(system_site_packages=True, with_pip=False, clear=True).create(folder)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import site as here
    parents = [p for p in here.getsitepackages() if Path(p).is_dir()]
    (Path(site) / "_mubench_parent.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in parents))
    return python


def install(entry: Submission, python: str) -> list[str]:
    """pip install the requirement (no dependencies) into `python`'s environment; the reasons it failed."""
    argv = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed", "--disable-pip-version-check"]
    result = _call(argv + (["--no-build-isolation"] if entry.local else []) + [entry.pip_target])
    return [] if result.returncode == 0 else [f"pip install {entry.requirement!r} failed: {_last_line(result)}"]


def kit(entry: Submission, python: str) -> list[str]:
    """The conformance kit on each listed method, in `python`'s environment; one reason per failing method."""
    result = _call([python, "-c", KIT, entry.dist, *entry.methods])
    if result.returncode == 0:
        return []
    return [line for line in result.stdout.splitlines() if line.strip()] or [f"the kit crashed: {_last_line(result)}"]


def run(entry: Submission, python: str, store: Path, preset: str, seeds: str, options: list[str]) -> list[str]:
    """`mubench run` of the listed methods into `store`; one reason per failed cell (or the run's error)."""
    argv = [python, "-c", CLI, "run", "--methods", ",".join(entry.methods), "--preset", preset, "--seeds", seeds,
            "--out", str(store), "--quiet", "--no-plots", *options]
    result = _call(argv + (["--preset-from", str(entry.preset)] if entry.preset else []))
    if result.returncode == 0:
        return []
    reasons = [line.split(": ", 1)[1].strip() for line in result.stderr.splitlines()
               if line.startswith(("failed: ", "error: "))]
    return [f"{preset} run: {reason}" for reason in reasons] or [f"{preset} run: {_last_line(result)}"]


def render(python: str, store: Path, out: Path) -> list[str]:
    """The boards of `store` into `out`, rendered where the plugin is installed (so a row names its package)."""
    result = _call([python, "-c", CLI, "leaderboard", "--store", str(store), "--out", str(out)])
    return [] if result.returncode == 0 else [f"rendering the boards failed: {_last_line(result)}"]


def try_submission(entry: Submission, out: Path, preset: str, seeds: list[int], options: list[str]) -> list[str]:
    """The PR workflow's steps for one submission, in a fresh venv: install, kit, a smoke run on the first seed, then
    the asked run if it differs, each into <out>/stores/<dist>; only when every step passed are its boards rendered
    into <out>/leaderboards/<dist>/ (a failed submission is never shown half-done). Its failures' reasons."""
    store, boards = out / "stores" / entry.dist, out / "leaderboards" / entry.dist
    shutil.rmtree(boards, ignore_errors=True)  # an earlier try's boards are not this try's
    runs = [("smoke", str(seeds[0]))]
    if (preset, seeds) != ("smoke", seeds[:1]):
        runs.append((preset, ",".join(map(str, seeds))))
    with tempfile.TemporaryDirectory(prefix="mubench-submission-") as folder:
        python = str(make_venv(Path(folder)))
        failures = install(entry, python) or kit(entry, python)
        for run_preset, run_seeds in runs:
            failures = failures or run(entry, python, store, run_preset, run_seeds,
                                       ["--cache-dir", str(out / "cache"), *options])
        return failures or render(python, store, boards)


def install_here(entry: Submission) -> list[str]:
    """Install into this environment and run the kit; uninstall it again if either failed. Its failures' reasons."""
    failures = install(entry, sys.executable) or kit(entry, sys.executable)
    if failures:
        _call([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", entry.dist])
    return failures
