"""`mubench leaderboard --html`: the site's pages hold the markdown boards' rows in the same order and their notes,
everything they link or load lies in the site's folder, and in a headless Chromium the tables sort by a clicked
column, the picture loads and no request leaves the site."""
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from mubench.boards.leaderboard import latest_cells
from mubench.boards.site import ASSETS, html_table, page as site_page
from mubench.core.store import TAG
from mubench.core.tracking import default_tracking_uri
from conftest import invoke

BOARD = "digits-resnet18-smoke"
PLUGINS = Path(__file__).parent / "plugins"


class Page(HTMLParser):
    """A page's tables (header texts, rows of cell texts), its src/href values and its text."""

    def __init__(self, path: Path):
        super().__init__()
        self.tables, self.links, self.text, self._cell = [], [], [], None
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href")]
        if tag == "table":
            self.tables.append({"headers": [], "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            text = "".join(self._cell).strip()
            table = self.tables[-1]
            (table["headers"] if tag == "th" else table["rows"][-1]).append(text)
            self._cell = None
        elif tag == "thead":
            self.tables[-1]["rows"].pop()  # the header's own <tr>

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def markdown_tables(board: str) -> list[dict]:
    """The pipe tables of a markdown board as the page should show them: cells unescaped, formatting dropped."""
    tables, previous = [], ""
    for line in board.splitlines():
        if line.startswith("|"):
            cells = [plain(c.strip().replace("\\|", "|")) for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            if not previous.startswith("|"):
                tables.append({"headers": cells, "rows": []})
            elif not set(line) <= set("|-: "):
                tables[-1]["rows"].append(cells)
        previous = line
    return tables


def plain(markdown: str) -> str:
    return re.sub(r"\*\*|`", "", markdown)


def squeeze(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def site(smoke_run, tmp_path_factory) -> tuple[Path, Path]:
    """The smoke store's markdown boards and its site, written by one `mubench leaderboard --html`."""
    folder = tmp_path_factory.mktemp("site")
    result = invoke("leaderboard", "--store", str(smoke_run[0]), "--out", str(folder / "md"),
                    "--html", str(folder / "html"))
    assert result.exit_code == 0, result.stderr
    assert {Path(line).name for line in result.stdout.split()} == {f"{BOARD}.md", f"{BOARD}.html", "index.html"}
    return folder / "md", folder / "html"


def test_the_page_holds_every_row_of_the_markdown_board_in_order_and_its_notes(site):
    markdown, html = site
    board = (markdown / f"{BOARD}.md").read_text()
    shown = Page(html / f"{BOARD}.html")
    expected = markdown_tables(board)
    assert len(shown.tables) == len(expected) and len(expected[0]["rows"]) == 3
    for table, wanted in zip(shown.tables, expected):
        assert table["headers"] == [*wanted["headers"], "source"]
        assert [row[:-1] for row in table["rows"]] == wanted["rows"]
    text = squeeze("".join(shown.text))
    for line in board.splitlines():
        if line.strip() and not line.startswith("|"):
            assert squeeze(plain(line.lstrip("#"))) in text


def test_rows_link_their_method_file_at_the_recorded_commit(site, smoke_run):
    _, html = site
    table = Page(html / f"{BOARD}.html").tables[0]
    sources = {row[1]: row[-1] for row in table["rows"]}
    (commit,) = set(latest_cells(default_tracking_uri(smoke_run[0]))[f"tags.{TAG}git_sha"])
    finetune = next(text for name, text in sources.items() if name.startswith("finetune"))
    if commit == "unknown":
        assert finetune == "methods/finetune.py"
        return
    assert finetune == f"methods/finetune.py @ {commit[:7]}"
    assert all(text == f"methods/references.py @ {commit[:7]}" for name, text in sources.items()
               if name.startswith(("original", "retrain")))
    linked = html / "source" / commit[:7] / "methods" / "finetune.py"
    assert f'href="source/{commit[:7]}/methods/finetune.py"' in (html / f"{BOARD}.html").read_text()
    assert '@register_method("finetune")' in linked.read_text()


def test_the_picture_is_the_boards_png_beside_the_page(site):
    _, html = site
    page_html = (html / f"{BOARD}.html").read_text()
    assert f'<img src="{BOARD}-scatter.png"' in page_html
    assert (html / f"{BOARD}-scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_src_and_href_is_relative_and_resolves_to_a_file_of_the_site(site):
    _, html = site
    pages = sorted(html.glob("*.html"))
    links = [(path, link) for path in pages for link in Page(path).links]
    assert {link for _, link in links} >= {"board.css", "sort-table.js", "index.html", f"{BOARD}-scatter.png"}
    for path, link in links:
        parsed = urlparse(link)
        assert not parsed.scheme and not parsed.netloc and not link.startswith("/"), (path.name, link)
        target = (path.parent / unquote(parsed.path)).resolve()
        assert target.is_file() and target.is_relative_to(html.resolve()), (path.name, link)


def test_the_index_links_every_board_page(site):
    _, html = site
    index = Page(html / "index.html")
    boards = {path.name for path in html.glob("*.html")} - {"index.html"}
    assert boards == {f"{BOARD}.html"}
    assert boards <= set(index.links)
    row = index.tables[0]["rows"][0]
    assert row[:3] == [f"{BOARD}.html", "digits × resnet18 (preset smoke)", "0"]
    assert re.fullmatch(r"mubench run --methods finetune --out \S+ --preset smoke --quiet", row[3])


def test_an_unwritable_html_folder_is_one_sentence_and_nothing_is_written(smoke_run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke("leaderboard", "--store", str(smoke_run[0]), "--out", str(tmp_path / "md"),
                    "--html", str(blocker / "site"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: --html '{blocker / 'site'}' is not writable")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list((tmp_path / "md").glob("*.md"))


def test_a_plugin_row_names_its_distribution_and_version(tmp_path):
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(PLUGINS / "good")], check=True, capture_output=True)
    shown = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; from mubench.boards.site import method_source; "
                               "print(method_source('demo-retain-sgd', ['0123abc'], Path(sys.argv[1])))",
         str(tmp_path / "site")],
        env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "mubench-demo-plugin 0.1.0"
    assert not (tmp_path / "site").exists()


# In a headless browser.

def column(page, table: str, header: str) -> list[str]:
    return page.eval_on_selector(table, """(table, header) => {
        const index = Array.from(table.tHead.rows[0].cells).findIndex(cell => cell.textContent.trim() === header);
        return Array.from(table.tBodies[0].rows, row => row.cells[index].textContent.trim());
    }""", header)


def click(page, table: str, header: str) -> None:
    page.locator(table).locator("thead button", has_text=re.compile(f"^{re.escape(header)}$")).click()


def leading_number(text: str) -> float:
    return float(re.match(r"-?\d+(\.\d+)?", text).group())


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch()
        except sync_api.Error:
            system = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
            if system is None:
                pytest.skip("no Chromium: neither `playwright install chromium` nor a system chromium is installed")
            launched = playwright.chromium.launch(executable_path=system)
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser):
    """Open a file of a folder; returns the page and the URLs it requested; fails on a script error."""
    opened, errors = [], []

    def open_in(path: Path):
        tab = browser.new_page()
        tab.set_default_timeout(5000)
        requests = []
        tab.on("request", lambda request: requests.append(request.url))
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(path.as_uri())
        tab.wait_for_load_state("load")
        opened.append(tab)
        return tab, requests

    yield open_in
    for tab in opened:
        tab.close()
    assert not errors


def test_in_a_browser_the_board_sorts_by_a_clicked_column_shows_its_picture_and_stays_in_the_site(site, open_page):
    markdown, html = site
    page, requests = open_page(html / f"{BOARD}.html")
    main = "table.sortable >> nth=0"
    labels = [row[1] for row in markdown_tables((markdown / f"{BOARD}.md").read_text())[0]["rows"]]
    assert column(page, main, "method") == labels
    assert page.eval_on_selector("figure img", "img => img.complete && img.naturalWidth") > 0
    for header in ("test acc", "NoMUS"):
        before = column(page, main, header)
        click(page, main, header)
        rising = column(page, main, header)
        assert sorted(rising) == sorted(before)
        assert [leading_number(v) for v in rising] == sorted(leading_number(v) for v in before)
        click(page, main, header)
        falling = [leading_number(v) for v in column(page, main, header)]
        assert falling == sorted(falling, reverse=True)
    click(page, main, "method")
    assert column(page, main, "method") == sorted(labels)
    site_url = html.as_uri() + "/"
    assert len(requests) >= 4 and all(url.startswith(site_url) for url in requests), requests


def test_in_a_browser_numbers_sort_by_value_and_missing_values_go_last_both_ways(open_page, tmp_path):
    for asset in ASSETS:
        shutil.copy(Path(__file__).parents[1] / "mubench" / "boards" / "site_static" / asset, tmp_path)
    values = ["9", "—", "0.5 ± 0.1 °", "n/a", "10", "-0.25 ± 0.01", "1="]
    table = site_page("sorting", html_table(["x"], [[value] for value in values]))
    (tmp_path / "table.html").write_text(table, encoding="utf-8")
    tab, _ = open_page(tmp_path / "table.html")
    click(tab, "table", "x")
    assert column(tab, "table", "x") == ["-0.25 ± 0.01", "0.5 ± 0.1 °", "1=", "9", "10", "—", "n/a"]
    click(tab, "table", "x")
    assert column(tab, "table", "x") == ["10", "9", "1=", "0.5 ± 0.1 °", "-0.25 ± 0.01", "—", "n/a"]
