"""A sampled mutation run over the harness: how many one-token wrong variants of `mubench/` the default suite kills.

Not part of the package and not a dependency: it needs `coverage` and `pytest-cov` in the environment that runs it.

    python tools/mutation.py map               # once: which default tests execute each line (coverage contexts)
    python tools/mutation.py run --per-module 8 --seed 0   # mutants sampled per module, each against its tests
    python tools/mutation.py report            # the score per module and the survivors

It works on a copy of the work tree (`--work`, default `.mutation/tree`) so the real sources are never edited, and
runs each mutant against only the default-suite tests that execute its line (fastest first, stopping at the first
failure). Results go to `.mutation/results.jsonl`, one line per mutant, so a killed run resumes where it stopped.
The copy must be importable as `mubench`: `map` makes an editable install of it into a venv of its own
(`.mutation/venv`, whose site-packages reach this venv's dependencies through a .pth file).

Operators (each a one-token edit a developer could make by mistake): a comparison flipped (< ↔ <=, == ↔ !=, in ↔
not in, is ↔ is not), an arithmetic operator swapped (+ ↔ -, * ↔ /, // → /), `and` ↔ `or`, a `not` or unary minus
dropped, True ↔ False, an integer n → n + 1, a number x → 2x, a keyword argument dropped from a call, an entry
dropped from a dict literal, and a one-line statement (call, assignment to an attribute or item, augmented
assignment) replaced by `pass`. Docstrings, annotations, f-strings and logging calls are left alone.
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_TEST = "no default test executes this line"
CUDA_ONLY = "CUDA only:"  # a reason in the equivalent file that starts so: not equivalent, but no CPU test reaches it
EXCLUDED = {"cli/main.py", "cli/data.py", "boards/figures.py", "boards/scatter.py", "boards/report.py"}  # CLI and plotting
SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
         ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
         ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
         ast.And: ast.Or, ast.Or: ast.And}


@dataclass
class Mutant:
    module: str  # path under mubench/, e.g. run/cell.py
    line: int
    operator: str
    before: str
    after: str
    start: tuple[int, int]  # (line, byte column) of the replaced span
    end: tuple[int, int]

    @property
    def ident(self) -> str:
        return f"{self.module}:{self.line}:{self.start[1]}:{self.operator}:{self.after}"


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, f-strings, logging calls."""
    skip: set[int] = set()

    def drop(node):
        skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                drop(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.returns:
                drop(node.returns)
            for arg in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                if arg.annotation:
                    drop(arg.annotation)
        if isinstance(node, ast.AnnAssign):
            drop(node.annotation)
        if isinstance(node, ast.JoinedStr):
            drop(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                isinstance(node.func.value, ast.Name) and node.func.value.id in {"log", "logging", "logger"}:
            drop(node)
        if isinstance(node, ast.ImportFrom) or isinstance(node, ast.Import):
            drop(node)
    return skip


def _variants(node: ast.AST):
    """(operator, replacement node) pairs for one node."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in SWAPS:
                new = copy.deepcopy(node)
                new.ops[i] = SWAPS[type(op)]()
                yield "compare", new
    elif isinstance(node, ast.BinOp) and type(node.op) in SWAPS:
        if isinstance(node.op, ast.Add) and any(isinstance(s, (ast.JoinedStr, ast.Tuple, ast.List)) or
                                                 isinstance(s, ast.Constant) and isinstance(s.value, str)
                                                 for s in (node.left, node.right)):
            return  # concatenation: "a" - "b" is a TypeError, not a plausible slip
        new = copy.deepcopy(node)
        new.op = SWAPS[type(node.op)]()
        yield "arith", new
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = SWAPS[type(node.op)]()
        yield "bool", new
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        yield "unary", copy.deepcopy(node.operand)
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        yield "constant", ast.Constant(not node.value)
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        yield "constant", ast.Constant(node.value + 1)
    elif isinstance(node, ast.Constant) and type(node.value) is float:
        yield "constant", ast.Constant(node.value * 2 if node.value else 1.0)
    elif isinstance(node, ast.Call):
        for i in range(len(node.keywords)):
            new = copy.deepcopy(node)
            del new.keywords[i]
            yield "keyword", new
    elif isinstance(node, ast.Dict) and len(node.keys) > 1:
        for i in range(len(node.keys)):
            new = copy.deepcopy(node)
            del new.keys[i], new.values[i]
            yield "dict-entry", new


def _deletable(stmt: ast.stmt) -> bool:
    if stmt.lineno != stmt.end_lineno:
        return False
    if isinstance(stmt, ast.Expr):
        return isinstance(stmt.value, ast.Call)
    if isinstance(stmt, ast.AugAssign):
        return True
    if isinstance(stmt, ast.Assign):
        return all(isinstance(t, (ast.Attribute, ast.Subscript)) for t in stmt.targets)
    return False


def mutants_of(path: Path) -> list[Mutant]:
    source = path.read_bytes()
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    skip = _skipped_nodes(tree)
    out = []

    def segment(node) -> str:
        first, last = node.lineno - 1, node.end_lineno - 1
        if first == last:
            return lines[first][node.col_offset:node.end_col_offset].decode()
        return (lines[first][node.col_offset:] + b"".join(lines[first + 1:last])
                + lines[last][:node.end_col_offset]).decode()

    for node in ast.walk(tree):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        span = ((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset))
        if isinstance(node, ast.stmt):
            if _deletable(node):
                out.append(Mutant(module_name(path), node.lineno, "statement", segment(node), "pass", *span))
            continue
        if isinstance(node, ast.expr) and not isinstance(getattr(node, "ctx", ast.Load()), ast.Load):
            continue
        for operator, new in _variants(node):
            text = ast.unparse(new)
            out.append(Mutant(module_name(path), node.lineno, operator, segment(node), f"({text})", *span))
    return out


def apply(mutant: Mutant, source: bytes) -> bytes:
    lines = source.splitlines(keepends=True)
    (l1, c1), (l2, c2) = mutant.start, mutant.end
    head = b"".join(lines[:l1 - 1]) + lines[l1 - 1][:c1]
    tail = lines[l2 - 1][c2:] + b"".join(lines[l2:])
    return head + mutant.after.encode() + tail


def module_name(path: Path | str) -> str:
    """A module's path under mubench/ (run/cell.py), whichever tree it lies in."""
    return str(path).rsplit("/mubench/", 1)[-1]


def harness_modules() -> list[Path]:
    return sorted(p for p in (ROOT / "mubench").glob("*/*.py")
                  if p.name != "__init__.py" and module_name(p) not in EXCLUDED)


def prepare_tree(work: Path) -> None:
    """A copy of the tracked files (and untracked, not ignored ones) at `work`."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target)


def make_venv(state: Path, work: Path) -> Path:
    venv = state / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        purelib = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
        # A path listed in a .pth file is not itself scanned for .pth files, so this venv's editable mubench
        # install is not overridden by the one of the venv it borrows its dependencies from.
        Path(own, "borrowed.pth").write_text(purelib + "\n")
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e",
                        str(work)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "coverage>=7", "pytest-cov>=4",
                        "setuptools>=68", "wheel"], check=True)
    return python


def tests_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MUBENCH_"))}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", CI="true")
    return env


def _numbits(bits: bytes) -> list[int]:
    """The line numbers of coverage's numbits encoding (bit b of byte i is line 8i + b)."""
    return [8 * i + b for i, byte in enumerate(bits) for b in range(8) if byte >> b & 1]


def cmd_map(args) -> None:
    """Run the default suite (or `--tests`) once under coverage with per-test contexts; keep, per line of each
    module, the tests that executed it, and each test's duration."""
    state, work = Path(args.state).resolve(), Path(args.work).resolve()
    started = time.time()
    if not args.reuse:
        if work.exists():
            shutil.rmtree(work)
        prepare_tree(work)
        python = make_venv(state, work)
        subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mutation",
                        "--cov=mubench", "--cov-context=test", "--cov-report=", f"--junitxml={state / args.name}.xml",
                        *args.tests],
                       cwd=work, env={**tests_env(), "COVERAGE_FILE": str(state / f"{args.name}.db"),
                                      "PYTHONPATH": str(ROOT / "tools"),
                                      "MUTATION_FIXTURES": str(state / f"{args.name}.fixtures.json")})
    durations = {}  # of the tests that passed: a mutant is judged only by tests that pass without it
    for case in ET.parse(state / f"{args.name}.xml").iter("testcase"):
        if any(child.tag in ("failure", "error", "skipped") for child in case):
            continue
        nodeid = case.get("classname").replace(".", "/") + ".py::" + case.get("name")
        durations[nodeid] = float(case.get("time") or 0)
    sharing = shared_fixture_users(state / f"{args.name}.fixtures.json", durations)
    lines: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    db = sqlite3.connect(state / f"{args.name}.db")
    rows = db.execute("select file.path, context.context, line_bits.numbits from line_bits "
                      "join file on file.id = line_bits.file_id join context on context.id = line_bits.context_id")
    imported: dict[str, set[int]] = defaultdict(set)  # lines run while importing (collection): before any test
    for path, context, bits in rows:
        if not context:
            imported[module_name(path)].update(_numbits(bits))
        if not context or "|" not in context:
            continue
        nodeid, _, phase = context.rpartition("|")  # |setup counts too: a fixture's work is its tests' work
        if nodeid not in durations:
            continue
        users = sharing.get(nodeid, {nodeid}) if phase == "setup" else {nodeid}
        for line in _numbits(bits):
            lines[module_name(path)][line].extend(users)
    (state / f"{args.name}.json").write_text(json.dumps({"durations": durations, "lines": lines,
                                                        "imported": {k: sorted(v) for k, v in imported.items()},
                                                "suite_seconds": time.time() - started}))
    print(f"mapped {sum(len(v) for v in lines.values())} lines of {len(lines)} modules with "
          f"{len(durations)} tests in {time.time() - started:.0f} s")


def pytest_collection_finish(session) -> None:
    """Loaded into the map's pytest (`-p mutation`): write each test's module- and session-scoped fixtures."""
    target = os.environ.get("MUTATION_FIXTURES")
    if not target:
        return
    wide = {}
    for item in session.items:
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        wide[item.nodeid] = sorted(name for name, found in defs.items() if found and found[-1].scope != "function")
    Path(target).write_text(json.dumps(wide))


def shared_fixture_users(path: Path, durations: dict) -> dict[str, set[str]]:
    """nodeid -> the passing tests that share a module- or session-scoped fixture with it (itself included).

    Such a fixture is built in the setup of the first test that asks for it, so coverage credits its lines to that
    test alone, while every test using it reads what it built. Fixtures every test uses (autouse) are left out."""
    if not path.exists():
        return {}
    wide = {k: set(v) for k, v in json.loads(path.read_text()).items() if k in durations}
    everywhere = set.intersection(*wide.values()) if wide else set()
    by_fixture = defaultdict(set)
    for nodeid, names in wide.items():
        for name in names - everywhere:
            by_fixture[name].add(nodeid)
    return {nodeid: {nodeid}.union(*(by_fixture[n] for n in names - everywhere)) for nodeid, names in wide.items()}


def sample(per_module: int, seed: int) -> list[Mutant]:
    chosen = []
    for path in harness_modules():
        found = mutants_of(path)
        random.Random(f"{seed}:{module_name(path)}").shuffle(found)
        chosen += found[:per_module]
    return chosen


def chosen_tests(module: str, tests: list[str], durations: dict, budget: float) -> list[str]:
    """The tests a mutant runs against: those of the module's own test files first (test_<module>*.py, and files
    that import it), then the rest, each group fastest first, until their summed duration passes `budget` seconds
    (0: all). A mutant that survives these is reported survived: the score is a lower bound when tests are cut."""
    dotted = module[:-3].replace("/", ".")
    package, _, stem = dotted.rpartition(".")
    imports = re.compile(rf"mubench\.{re.escape(dotted)}\b|from mubench\.{package} import [^\n]*\b{stem}\b")
    own = {p.name for p in (ROOT / "tests").glob("test_*.py")
           if p.stem.startswith(f"test_{stem}") or imports.search(p.read_text())}
    ordered = sorted(set(tests), key=lambda t: (Path(t.split("::")[0]).name not in own, durations.get(t, 0.0)))
    if not budget:
        return ordered
    chosen, spent = [], 0.0
    for test in ordered:
        if spent >= budget:
            break
        chosen.append(test)
        spent += durations.get(test, 1.0)
    return chosen


def run_one(mutant: Mutant, python: Path, work: Path, tests: list[str], durations: dict, budget: float) -> dict:
    target = work / "mubench" / mutant.module
    original = target.read_bytes()
    mutated = apply(mutant, original)
    try:
        compile(mutated, str(target), "exec")
    except SyntaxError as exc:
        return {"status": "invalid", "detail": str(exc)}
    if not tests:
        return {"status": "survived", "detail": NO_TEST}
    all_tests = tests
    tests = chosen_tests(mutant.module, tests, durations, budget)
    limit = 60 + 3 * sum(durations.get(t, 1.0) for t in tests)
    target.write_bytes(mutated)
    started = time.time()
    try:
        done = subprocess.run([str(python), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-cov",
                               "--benchmark-disable", "-m", "not slow", *tests], cwd=work, env=tests_env(),
                              capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"status": "killed", "detail": f"timeout after {limit:.0f} s", "seconds": time.time() - started}
    finally:
        target.write_bytes(original)
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    failed = [ln.split(" ", 1)[1].split(" - ")[0] for ln in done.stdout.splitlines() if ln.startswith("FAILED ")]
    status = "survived" if done.returncode == 0 else "killed" if done.returncode == 1 else "error"
    return {"status": status, "detail": (failed[0] if failed else summary)[:300], "tests": len(tests),
            "of": len(set(all_tests)),
            "seconds": round(time.time() - started, 1)}


def cmd_run(args) -> None:
    state, work = Path(args.state).resolve(), Path(args.work).resolve()
    prepare_tree(work)  # the current tests and sources (results of earlier runs stay valid only for their tree)
    python = make_venv(state, work)
    mapping = {"durations": {}, "lines": defaultdict(lambda: defaultdict(list)), "imported": defaultdict(list)}
    for name in args.map.split(","):  # several maps (e.g. of tests added since the first) run as one
        part = json.loads((state / f"{name}.json").read_text())
        mapping["durations"].update(part["durations"])
        for module, lines in part["lines"].items():
            for line, tests in lines.items():
                mapping["lines"][module][line] += tests
        for module, lines in part["imported"].items():
            mapping["imported"][module] += lines
    results_path = state / args.results
    earlier = [json.loads(ln) for ln in results_path.read_text().splitlines()] if results_path.exists() else []
    done = {r["ident"] for r in earlier if r.get("detail") != NO_TEST}
    mutants = sample(args.per_module, args.seed)
    if args.only_survivors:
        earlier = [json.loads(ln) for ln in Path(args.only_survivors).read_text().splitlines()]
        keep = {r["ident"] for r in earlier if r["status"] == "survived"}
        mutants = [m for m in mutants if m.ident in keep]
    print(f"{len(mutants)} mutants, {len(done)} already done", flush=True)
    if args.reverse:
        mutants.reverse()
    for mutant in mutants:
        if args.also_done and Path(args.also_done).exists():  # a second worker taking the list from the other end
            done |= {json.loads(ln)["ident"] for ln in Path(args.also_done).read_text().splitlines()}
        if mutant.ident in done:
            continue
        tests = mapping["lines"].get(mutant.module, {}).get(str(mutant.line), [])
        if not tests and mutant.line in mapping["imported"].get(mutant.module, []):
            tests = list(mapping["durations"])  # import-time code: every test depends on it, own tests first
        result = {"ident": mutant.ident, **asdict(mutant), **run_one(mutant, python, work, tests,
                                                                      mapping["durations"], args.budget)}
        with results_path.open("a") as out:
            out.write(json.dumps(result) + "\n")
        print(f"{result['status']:8} {mutant.module}:{mutant.line} {mutant.operator} "
              f"{mutant.before[:50]!r} -> {mutant.after[:50]!r} ({result.get('seconds', 0)} s)", flush=True)


def cmd_report(args) -> None:
    rows = list({r["ident"]: r for name in args.results.split(",")  # several workers' files, comma-separated
                 for r in (json.loads(ln) for ln in (Path(args.state) / name).read_text().splitlines())}.values())
    judged = dict(ln.split("\t", 1) for ln in Path(args.equivalent).read_text().splitlines()
                  if ln.strip() and not ln.startswith("#")) if args.equivalent else {}
    equivalent = {ident for ident, why in judged.items() if not why.startswith(CUDA_ONLY)}
    cuda_only = set(judged) - equivalent
    killed_later = set()  # --after: a later pass (new tests) over the survivors
    for name in args.after or []:
        killed_later |= {r["ident"] for r in (json.loads(ln) for ln in (Path(args.state) / name).read_text()
                                              .splitlines()) if r["status"] in ("killed", "error")}
    by_module = defaultdict(lambda: defaultdict(int))
    for r in rows:
        status = {"error": "killed", "invalid": "invalid"}.get(r["status"], r["status"])  # error: the suite broke
        if status == "survived" and r["ident"] in killed_later:
            status = "killed"
        if status == "survived" and r["ident"] in equivalent:
            status = "equivalent"
        if status == "survived" and r["ident"] in cuda_only:
            status = "cuda-only"
        by_module[r["module"]][status] += 1
    print("| module | mutants | killed | survived | equivalent | CUDA only | score |\n|---|---|---|---|---|---|---|")
    total = defaultdict(int)
    for module, counts in sorted(by_module.items()):
        for k, v in counts.items():
            total[k] += v
        real = counts["killed"] + counts["survived"]
        score = f"{counts['killed'] / real:.0%}" if real else "—"
        print(f"| {module} | {sum(counts.values())} | {counts['killed']} | {counts['survived']} | "
              f"{counts['equivalent']} | {counts['cuda-only']} | {score} |")
    real = total["killed"] + total["survived"]
    print(f"| all | {sum(total.values())} | {total['killed']} | {total['survived']} | {total['equivalent']} | "
          f"{total['cuda-only']} | {total['killed'] / max(1, real):.0%} |")
    if args.survivors:
        for r in rows:
            if r["status"] == "survived" and r["ident"] not in set(judged) | killed_later:
                print(f"{r['module']}:{r['line']} {r['operator']} {r['before'][:70]!r} -> {r['after'][:70]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", default=str(ROOT / ".mutation"))
    parser.add_argument("--work", default=str(ROOT / ".mutation" / "tree"))
    parser.add_argument("--results", default="results.jsonl")
    sub = parser.add_subparsers(dest="command", required=True)
    mapping = sub.add_parser("map")
    mapping.add_argument("--name", default="map", help="the map's files in the state folder: NAME.json, .db, .xml")
    mapping.add_argument("--reuse", action="store_true", help="read the coverage of an earlier map run again")
    mapping.add_argument("tests", nargs="*", help="test paths (default: the whole default suite)")
    run = sub.add_parser("run")
    run.add_argument("--per-module", type=int, default=8)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--map", default="map", help="the test maps to read, comma-separated (map --name)")
    run.add_argument("--reverse", action="store_true", help="take the mutants from the end of the list")
    run.add_argument("--also-done", help="another worker's results file: skip what it has done")
    run.add_argument("--budget", type=float, default=0.0,
                     help="seconds of (mapped) test time per mutant, own tests first; 0: every test on the line")
    run.add_argument("--only-survivors", help="a results file: rerun only the mutants it lists as survived")
    report = sub.add_parser("report")
    report.add_argument("--equivalent", help="a file of mutant idents judged equivalent, one per line")
    report.add_argument("--survivors", action="store_true")
    report.add_argument("--after", nargs="*", help="results files of later passes over the survivors")
    args = parser.parse_args()
    {"map": cmd_map, "run": cmd_run, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    main()
