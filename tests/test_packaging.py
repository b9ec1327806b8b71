"""methods/ and datasets/ install as mubench.methods and mubench.datasets, from a wheel as well as editable."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_install_imports_methods_datasets_and_manifests(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next(wheels.glob("mubench-*.whl"))
    subprocess.run([*pip, "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True)
    code = ("import mubench, mubench.methods.dlfd, mubench.datasets.digits as d; "
            "from mubench.unlearn.api import METHODS; METHODS.get('scrub'); "
            "s = d.Digits().load(); print(mubench.__file__, len(s.forget))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(target)}, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    location, forget = out.split()
    assert location.startswith(str(target)) and int(forget) > 0


def test_no_top_level_methods_or_datasets_package_is_installed():
    code = "import importlib.util as u; print(u.find_spec('methods'), u.find_spec('datasets'))"
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True).stdout
    assert str(ROOT) not in out
