"""``AIRFLOW_V_3_0_PLUS``: the one name the provider's system tests and their utils import from here."""

from __future__ import annotations

from airflow import __version__
from packaging.version import Version

AIRFLOW_V_3_0_PLUS = Version(Version(__version__).base_version) >= Version("3.0.0")
