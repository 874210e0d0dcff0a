"""The Amazon provider's own system tests (``tests/system/amazon/aws/example_*.py``), unmodified, as DAGs.

They ship in the provider's source distribution on the package index, not in its wheel: :func:`sdist`
downloads the installed version's once (hash-checked) into the cache directory and keeps it there.
:func:`dag_layout` extracts one system test into a DAG folder of its own, and its helper package
``system.amazon.aws.utils`` into a library folder. The few modules of the Airflow repository's
``tests_common.test_utils`` that they import are stood in for by ``shims/``; nothing else is changed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

DISTRIBUTION = "apache-airflow-providers-amazon"
SHIMS = Path(__file__).resolve().parent / "shims"
INDEX_ENV = "PIP_INDEX_URL"  # a mirror of the index, as pip reads it
DEFAULT_INDEX = "https://pypi.org/simple"
_SYSTEM = "tests/system"  # inside the sdist's top folder
_UTILS = "amazon/aws/utils/"
_PACKAGE_INITS = ("__init__.py", "amazon/__init__.py", "amazon/aws/__init__.py", f"{_UTILS}__init__.py")


def provider_version() -> str:
    return importlib.metadata.version(DISTRIBUTION)


def sdist_name(version: str) -> str:
    return f"{DISTRIBUTION.replace('-', '_')}-{version}.tar.gz"


def sdist(cache_dir: Path, version: str | None = None, index: str | None = None) -> Path:
    """The provider's source distribution (of the installed version by default): the one in
    ``cache_dir/provider-sdist`` once fetched, else from the index's simple page (JSON form), checked against
    the sha256 the index gives and written atomically, so a file in the cache is always complete."""
    version = version or provider_version()
    name = sdist_name(version)
    path = cache_dir / "provider-sdist" / name
    if path.is_file():
        return path
    import requests

    index = (index or os.environ.get(INDEX_ENV) or DEFAULT_INDEX).rstrip("/")
    page_url = f"{index}/{DISTRIBUTION}/"
    try:
        page = requests.get(page_url, headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=60)
        page.raise_for_status()
        files = [f for f in page.json()["files"] if f["filename"] == name]
        if not files:
            raise LookupError(f"{page_url} lists no {name}")
        expected = files[0]["hashes"]["sha256"]
        download = requests.get(files[0]["url"], timeout=300)
        download.raise_for_status()
    except requests.RequestException as error:
        raise RuntimeError(
            f"could not fetch {name} from {page_url} ({error}); offline, put the file in {path.parent} "
            f"(e.g. pip download --no-deps --no-binary :all: {DISTRIBUTION}=={version} -d {path.parent})"
        ) from error
    if hashlib.sha256(download.content).hexdigest() != expected:
        raise ValueError(f"{files[0]['url']}: sha256 differs from the index's {expected}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.")
    with os.fdopen(fd, "wb") as out:
        out.write(download.content)
    os.replace(partial, path)
    return path


@dataclass(frozen=True)
class DagLayout:
    dags_folder: Path  # the system test's DAG file, alone
    pythonpath: str  # its helper package ``system`` and the ``tests_common`` shims

    def env(self) -> dict[str, str]:
        """What the ``airflow`` subprocess needs to parse the DAG file and run its tasks."""
        return {"AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder), "PYTHONPATH": self.pythonpath}


def dag_layout(archive: Path, dag_file: str, into: Path, driver: Path | None = None) -> DagLayout:
    """Extract ``tests/system/amazon/aws/<dag_file>`` into ``into/dags`` and the package ``system`` (its
    ``__init__`` files and ``amazon/aws/utils/``) into ``into/lib``, byte for byte.

    With ``driver`` (a DAG file of ours that imports the system test as a module), the system test goes into
    ``into/lib`` instead, importable but never parsed as a DAG file, and ``driver`` alone into ``into/dags``.
    """
    dags, lib = into / "dags", into / "lib"
    wanted = {f"amazon/aws/{dag_file}": (lib if driver else dags) / dag_file}
    wanted.update({init: lib / "system" / init for init in _PACKAGE_INITS})
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            top, _, rest = member.name.partition(f"/{_SYSTEM}/")
            if "/" in top or not rest or not member.isfile():
                continue
            if rest in wanted:
                target = wanted.pop(rest)
            elif rest.startswith(_UTILS) and "/" not in rest.removeprefix(_UTILS):
                target = lib / "system" / rest
            else:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
    if wanted:
        raise LookupError(f"{archive.name} has no {', '.join(f'{_SYSTEM}/{k}' for k in wanted)}")
    if driver is not None:
        dags.mkdir(parents=True, exist_ok=True)
        (dags / driver.name).write_bytes(driver.read_bytes())
    return DagLayout(dags, os.pathsep.join([str(lib), str(SHIMS)]))
