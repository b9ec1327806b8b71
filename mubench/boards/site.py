"""`mubench leaderboard --html DIR`: the boards as a static site. One page per board holds the markdown board's text
(its rows in the same order, its footers) with each table sortable by any column, the board's picture and a column
naming each row's source; an index page links every board. Everything a page loads lies in the site's folder."""
from __future__ import annotations

import html
import re
import subprocess
from importlib import resources
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import pandas as pd

from mubench.boards.leaderboard import KEY, board_title, latest_cells, render_board
from mubench.boards.scatter import board_png, draw_board
from mubench.core.errors import MubenchError
from mubench.core.store import TAG, BoardKey, board_name

ASSETS = ("sort-table.js", "board.css")  # in mubench/boards/site_static/, copied beside the pages
INDEX = "index.html"
SOURCES = "source"  # the site's folder of method files, one subfolder per commit
CHECKOUT = Path(__file__).resolve().parents[2]  # the git checkout of an editable install
PACKAGE_FOLDERS = {"mubench.methods": "methods", "mubench.datasets": "datasets"}  # pyproject's package-dir
LABEL_COLUMNS = ("method", "variant")  # the header of a table's row-label column


def write_site(tracking_uri: str, folder: Path) -> list[Path]:
    """Write one page per board and the index into `folder`; return the pages (none when the store has no cells)."""
    cells = latest_cells(tracking_uri)
    if cells.empty:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    for asset in ASSETS:
        (folder / asset).write_bytes(resources.files("mubench.boards").joinpath("site_static", asset).read_bytes())
    pages, index_rows = [], []
    for key, group in cells.groupby(list(KEY)):
        key = BoardKey(*key)
        pages.append(write_board_page(key, group, folder))
        index_rows.append(index_row(key, group, pages[-1]))
    index = folder / INDEX
    index.write_text(page("Leaderboards", index_body(index_rows)), encoding="utf-8")
    return [*pages, index]


def write_board_page(key: BoardKey, cells: pd.DataFrame, folder: Path) -> Path:
    blocks = markdown_blocks(render_board(key, cells), row_sources(cells, folder))
    picture = draw_board(key, cells, folder / board_png(key))
    if picture is not None:
        first_table = next((i for i, block in enumerate(blocks) if block.startswith('<div class="table-wrap">')),
                           len(blocks) - 1)
        blocks.insert(first_table + 1, f'<figure><img src="{html.escape(picture.name)}" alt="test accuracy against '
                                       f'forgetting score with NoMUS iso-lines, and NoMUS against unlearn time">'
                                       f'<figcaption>{html.escape(board_title(key))}</figcaption></figure>')
    path = folder / (board_name(key)[:-len(".md")] + ".html")
    path.write_text(page(f"Leaderboard: {board_title(key)}", "\n".join(blocks), index_link=True), encoding="utf-8")
    return path


def page(title: str, body: str, index_link: bool = False) -> str:
    back = f'<p><a href="{INDEX}">All boards</a></p>\n' if index_link else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f'<link rel="stylesheet" href="{ASSETS[1]}">\n</head>\n<body>\n{back}{body}\n'
            f'<script src="{ASSETS[0]}"></script>\n</body>\n</html>\n')


def index_row(key: BoardKey, cells: pd.DataFrame, path: Path) -> list[str]:
    """The index's row of a board, as the markdown index has it: the page, title, seeds and producing commands."""
    seeds = sorted({int(s) for s in cells.loc[cells["status"] == "FINISHED", "seed"].dropna()})
    commands = sorted({c for c in cells["command"].dropna() if c})
    return [f'<a href="{html.escape(path.name)}">{html.escape(path.name)}</a>', html.escape(board_title(key)),
            html.escape(", ".join(map(str, seeds)) or "—"),
            "<br>".join(f"<code>{html.escape(c)}</code>" for c in commands) or "—"]


def index_body(rows: list[list[str]]) -> str:
    return "\n".join(["<h1>Leaderboards</h1>",
                      "<p>Rendered from the MLflow store by <code>mubench leaderboard --html</code>; each page holds "
                      "the markdown board's rows and notes, its table sorted by a click on a column's header.</p>",
                      html_table(["board", "task × backbone", "seeds", "produced by"], rows)])


def row_sources(cells: pd.DataFrame, folder: Path) -> dict[str, str]:
    """{row label: HTML naming its method's source} for the board's cells."""
    commit_column = f"tags.{TAG}git_sha"
    sources = {}
    for label, group in cells.sort_values("start_time").groupby("label"):
        commits = list(dict.fromkeys(group[commit_column].dropna())) if commit_column in group else []
        sources[label] = method_source(group["method"].iloc[0], commits, folder)
    return sources


def method_source(method: str, commits: list[str], folder: Path) -> str:
    """A built-in's file at each commit its cells recorded, linked to a copy in the site when git has it; a
    plugin's distribution and version."""
    from mubench.unlearn.api import METHODS
    try:
        module = METHODS.get(method).__module__
    except MubenchError:
        return html.escape(f"{method} is not installed here")
    if not module.startswith("mubench."):
        distributions = packages_distributions().get(module.partition(".")[0], [])
        return html.escape(", ".join(f"{name} {installed_version(name)}" for name in distributions) or module)
    package, _, name = module.rpartition(".")
    path = f"{PACKAGE_FOLDERS.get(package, package.replace('.', '/'))}/{name}.py"
    known = [commit for commit in commits if re.fullmatch(r"[0-9a-f]{7,40}", commit)]
    if not known:
        return html.escape(path)
    return f"{html.escape(path)} @ " + ", ".join(commit_link(path, commit, folder) for commit in known)


def installed_version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(version unknown)"


def commit_link(path: str, commit: str, folder: Path) -> str:
    """The short commit, linked to the file's text at that commit copied under the site's SOURCES folder when git
    has it."""
    short = html.escape(commit[:7])
    try:
        shown = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=CHECKOUT, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return short
    if shown.returncode != 0:
        return short
    copy = Path(SOURCES, commit[:7], path)
    (folder / copy).parent.mkdir(parents=True, exist_ok=True)
    (folder / copy).write_bytes(shown.stdout)
    return f'<a href="{html.escape(copy.as_posix())}">{short}</a>'


# The markdown the boards use: headings, paragraphs, indented code, lists, pipe tables, `code` and **bold**.

def markdown_blocks(text: str, sources: dict[str, str]) -> list[str]:
    """The board's markdown as HTML blocks; a table with a row-label column gains a "source" column from `sources`."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            blocks.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.startswith("    "):
            code, i = take(lines, i, lambda s: s.startswith("    ") or not s.strip())
            blocks.append("<pre><code>" + html.escape("\n".join(s[4:] for s in code).strip("\n")) + "</code></pre>")
        elif line.startswith("|"):
            rows, i = take(lines, i, lambda s: s.startswith("|"))
            blocks.append(board_table([cells_of(row) for row in rows[:1] + rows[2:]], sources))
        elif line.startswith("- "):
            items, i = take(lines, i, lambda s: s.startswith("- "))
            blocks.append("<ul>" + "".join(f"<li>{inline(item[2:])}</li>" for item in items) + "</ul>")
        else:
            paragraph, i = take(lines, i, lambda s: s.strip() and not s.startswith(("#", "|", "- ", "    ")))
            blocks.append(f"<p>{inline(' '.join(paragraph))}</p>")
    return blocks


def take(lines: list[str], start: int, belongs) -> tuple[list[str], int]:
    end = start + 1
    while end < len(lines) and belongs(lines[end]):
        end += 1
    return lines[start:end], end


def cells_of(row: str) -> list[str]:
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row.strip()[1:-1])]


def board_table(rows: list[list[str]], sources: dict[str, str]) -> str:
    headers, body = rows[0], [[inline(cell) for cell in row] for row in rows[1:]]
    label_column = next((headers.index(h) for h in LABEL_COLUMNS if h in headers), None)
    if label_column is not None and sources:
        headers = [*headers, "source"]
        body = [[*cells, sources.get(row_label(row[label_column], sources), "")] for row, cells in zip(rows[1:], body)]
    return html_table(headers, body)


def row_label(name: str, sources: dict[str, str]) -> str:
    """The label of a row whose name cell may carry notes after it, e.g. "retrain (reference)"."""
    return max((label for label in sources if name == label or name.startswith(label + " (")), key=len, default=name)


def html_table(headers: list[str], body: list[list[str]]) -> str:
    """A sortable table of already-escaped cells."""
    head = "".join(f'<th scope="col"><button type="button">{html.escape(h)}</button></th>' for h in headers)
    rows = "\n".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in body)
    return (f'<div class="table-wrap"><table class="sortable">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n'
            f'</tbody>\n</table></div>')


def inline(text: str) -> str:
    """Escaped text with `code` spans and **bold**."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(f"<code>{html.escape(part[1:-1])}</code>" if part.startswith("`") and len(part) > 1 else
                   re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(part)) for part in parts)
