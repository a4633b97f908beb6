"""What ``pip install django-asyncjobs`` puts on a user's machine: the wheel built from this
tree holds every file of the app (code, templates, static files, migrations, ``py.typed``)
and nothing else, and its metadata says what the docs promise (Python, Django and rq ranges).
The editable install the suite runs on would hide a template or a migration the wheel leaves
out. Built with hatchling from the dev extras, without network (``--no-build-isolation``)."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import django_asyncjobs

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "django_asyncjobs"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    pytest.importorskip("hatchling", reason="the dev extras install hatchling")
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    done = subprocess.run([*command, "--wheel-dir", str(out), str(ROOT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [built] = out.glob("django_asyncjobs-*.whl")
    return zipfile.ZipFile(built)


def _source_files() -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_wheel_holds_every_file_of_the_app_and_nothing_else(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    packaged = {name for name in names if not name.startswith("django_asyncjobs-")}
    assert packaged == _source_files()
    for needed in (
        "django_asyncjobs/py.typed",
        "django_asyncjobs/migrations/0001_initial.py",
        "django_asyncjobs/static/django_asyncjobs/asyncjobs.js",
        "django_asyncjobs/templates/admin/django_asyncjobs/dashboard.html",
    ):
        assert needed in packaged


def test_the_wheel_metadata_states_the_supported_ranges(wheel: zipfile.ZipFile) -> None:
    [metadata_name] = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    metadata = email.message_from_bytes(wheel.read(metadata_name))
    assert metadata["Name"] == "django-asyncjobs"
    assert metadata["Version"] == django_asyncjobs.__version__
    assert metadata["Requires-Python"] == ">=3.11"
    requires = {requirement.split(";")[0].replace(" ", "") for requirement in metadata.get_all("Requires-Dist")}
    assert {"django>=5.2", "rq<3.1,>=2.6.1", "django-rq<5,>=4.0"} <= {r.lower() for r in requires}
    # The docs say which rq versions the suite proves (docs/installation.md).
    installation = (ROOT / "docs" / "installation.md").read_text()
    assert "2.6.1" in installation and "3.0" in installation
