"""Shared test fixtures: the CLI runner with a pinned width, and golden files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

# The oracle modules live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite tests/golden/* from the current output",
    )


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cli(runner: CliRunner):
    """Run `mha ARGS` in-process with a pinned 160-column console and no colour."""
    from mha_cli.cli import app

    def invoke(*args: str):
        return runner.invoke(
            app, list(args), env={"COLUMNS": "160", "NO_COLOR": "1", "MHA_DEBUG": ""}
        )

    return invoke


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """Compare text with tests/golden/NAME, or rewrite it with --update-goldens."""
    update = request.config.getoption("--update-goldens")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update or not path.exists():
            path.write_text(text, encoding="utf-8")
            if not update:
                pytest.fail(
                    f"golden file {name} was missing and has been written; check it and rerun"
                )
        assert text == path.read_text(encoding="utf-8")

    return check


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory: pytest.TempPathFactory):
    """Tiny transformers models of every supported family, saved once per test session."""
    pytest.importorskip("transformers")
    from hf_models import build_all

    return build_all(tmp_path_factory.mktemp("hf"))
