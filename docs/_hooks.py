"""MkDocs hook: serve the committed study outputs (``examples/results/``) and the benchmarks' tables.

They stay where the scripts write them; the site links to them as ``results/data/<file>`` and
``results/benchmarks.md``, so nothing is copied into ``docs/`` by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
SERVED = {
    ROOT / "examples" / "results": "results/data",
}


def on_files(files: Files, config: Any) -> Files:
    """Add every file of the served folders under its site path."""
    for folder, site_path in SERVED.items():
        for path in sorted(folder.glob("*")):
            if path.is_file():
                files.append(
                    File.generated(config, f"{site_path}/{path.name}", abs_src_path=str(path))
                )
    return files
