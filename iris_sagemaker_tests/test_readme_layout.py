"""The README's layout section names every module of the package, so it cannot drift from the tree."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "iris_sagemaker"


def _layout() -> str:
    readme = (REPO / "README.md").read_text()
    start = readme.index("\niris_sagemaker/ ")
    return readme[start : readme.index("```", start)]


def _entry(layout: str, folder: str) -> str:
    """A folder's entry: from ``  folder/`` to the next entry of the tree."""
    start = layout.index(f"\n  {folder}/")
    following = re.search(r"\n  \S|\n\S", layout[start + 1 :])
    return layout[start : start + 1 + (following.start() if following else len(layout))]


def test_the_readme_layout_names_every_module() -> None:
    layout = _layout()
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" or "__pycache__" in path.parts:
            continue
        parts = path.relative_to(PACKAGE).parts
        if len(parts) == 1:
            named = re.search(rf"(^|\s){re.escape(path.name)}\s", layout)
        else:
            named = re.search(rf"\b{re.escape(path.stem)}\b", _entry(layout, parts[0]))
        if not named:
            missing.append("/".join(parts))
    assert not missing, f"README.md's layout section does not name: {', '.join(missing)}"


def test_the_readme_layout_names_no_module_that_is_gone() -> None:
    named = set(re.findall(r"(?:^|\s)([a-z_0-9]+\.py)\b", _layout()))
    existing = {
        path.name
        for folder in ("iris_sagemaker", "airflow_dags", "bench")
        for path in (REPO / folder).glob("*.py")
    }
    assert named <= existing, f"README.md's layout names files that do not exist: {sorted(named - existing)}"
