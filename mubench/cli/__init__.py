"""The `mubench` command line."""
from mubench.cli.main import main

__all__ = ["main"]
