"""Print mubench/ as a tree with line counts per module, then the import edges between its subpackages (module- and
function-level imports, counted per importing module) in layer order, marking any that points upwards.

    python tools/layout.py
"""
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_layout import LAYERS, imported_modules, layer_of  # noqa: E402  (the import-direction test's own reading)


def main() -> None:
    package = ROOT / "mubench"
    edges: Counter = Counter()
    total = 0
    for layer in LAYERS:
        files = sorted((package / layer).glob("*.py"))
        counts = {path.name: len(path.read_text().splitlines()) for path in files}
        total += sum(counts.values())
        print(f"{layer}/  ({sum(counts.values())} lines)")
        for name, lines in counts.items():
            print(f"    {name:<18} {lines:>4}")
        for path in files:
            for target in {layer_of(m) for m in imported_modules(path.read_text())} - {None, layer}:
                edges[(layer, target)] += 1
    print(f"total {total} lines in {len(LAYERS)} subpackages\n")
    print("imports between subpackages (importer -> imported: modules that import it):")
    for (source, target), count in sorted(edges.items(), key=lambda e: (LAYERS.index(e[0][0]), LAYERS.index(e[0][1]))):
        direction = "UPWARD" if LAYERS.index(target) > LAYERS.index(source) else "down"
        print(f"    {source:>8} -> {target:<8} {count:>3}  {direction}")


if __name__ == "__main__":
    main()
