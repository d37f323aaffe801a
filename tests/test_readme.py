"""Every code block of README.md runs as written (issue 15 item 4).

The bash and python blocks are extracted in order and run in one scratch folder laid out as the
README assumes (``bayes_mixlaw/`` of this clone and ``../shared/data`` beside it), each block in a
new shell or interpreter with this environment's ``bayes-mixlaw`` and ``python`` first on PATH; a
block reads what earlier blocks wrote (``fit.nc``, ``mixtures.csv``). An HTML comment right above a
block marks it, with its reason visible in the README's source:

- ``<!-- readme-test: skip: REASON -->``: not run here (REASON says why and what covers it instead);
- ``<!-- readme-test: slow: REASON -->``: run with ``pytest -m slow`` (whole NUTS fits of minutes).

Blocks without a mark run in the default test run; their cost there is kept to about two minutes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, SHARED_DATA

README = REPO / "README.md"
MARK = re.compile(r"<!--\s*readme-test:\s*(skip|slow):\s*(.+?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    language: str
    code: str
    line: int  # of the opening fence, 1-based
    mark: str | None = None
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.language}@line{self.line}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced code blocks of ``text`` with the mark of the HTML comment right above each (blank
    lines between them allowed). Every block must be bash or python: a block of another or no
    language is an error, so none escapes the test unseen."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, language = i, fence.group(1)
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"README.md line {start + 1}: a code block that is never closed")
        above = start - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        mark = MARK.search(lines[above]) if above >= 0 else None
        if language not in ("bash", "python"):
            raise ValueError(f"README.md line {start + 1}: a code block of language {language!r}; the README test runs bash and python blocks")
        blocks.append(Block(language, "\n".join(lines[start + 1 : end]) + "\n", start + 1, *(mark.groups() if mark else (None, ""))))
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text())


def _param(block: Block):
    marks = [pytest.mark.slow] if block.mark == "slow" else []
    if block.mark == "skip":
        marks.append(pytest.mark.skip(reason=f"README.md line {block.line}: {block.reason}"))
    return pytest.param(block, id=block.id, marks=marks)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder laid out as the README's commands expect: the package's data as ``bayes_mixlaw/``
    and the shared data as ``../shared/data``."""
    root = tmp_path_factory.mktemp("readme")
    (root / "shared").symlink_to(SHARED_DATA.parent if SHARED_DATA.name == "data" else SHARED_DATA, target_is_directory=True)
    work = root / "clone"
    work.mkdir()
    (work / "bayes_mixlaw").symlink_to(REPO / "bayes_mixlaw", target_is_directory=True)
    (work / "notebooks").symlink_to(REPO / "notebooks", target_is_directory=True)
    return work


def run_block(block: Block, workdir: Path, timeout: float) -> subprocess.CompletedProcess:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}
    if block.language == "bash":
        command = ["bash", "-euo", "pipefail", "-c", block.code]
    else:
        command = [sys.executable, "-c", block.code]
    return subprocess.run(command, check=False, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def test_readme_blocks_are_found_and_marked_with_reasons():
    assert len(BLOCKS) >= 6
    assert {b.language for b in BLOCKS} == {"bash", "python"}
    assert all(b.reason for b in BLOCKS if b.mark), "a marked block says why"
    with pytest.raises(ValueError, match="line 3: a code block of language 'text'"):
        readme_blocks("intro\n\n```text\nx\n```\n")
    blocks = readme_blocks("<!-- readme-test: skip: installs the package -->\n```bash\necho hi\n```\n\n```python\nprint(1)\n```\n")
    assert [(b.language, b.mark, b.reason, b.code) for b in blocks] == [
        ("bash", "skip", "installs the package", "echo hi\n"),
        ("python", None, "", "print(1)\n"),
    ]


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_readme_block_runs_as_written(block: Block, workdir: Path):
    result = run_block(block, workdir, timeout=3600 if block.mark == "slow" else 600)
    assert result.returncode == 0, (
        f"README.md line {block.line} ({block.language}) failed with exit code {result.returncode}:\n"
        f"{block.code}\n--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    )


def test_demo_runs_twice_in_one_folder(tmp_path, mocked_sampling):
    """The set-up line's demo, run again, replaces its own earlier output (it refused it before); a
    file of the same name that is not the demo's is still refused, naming it."""
    from typer.testing import CliRunner

    from bayes_mixlaw.cli import app

    cli = CliRunner()
    folder = tmp_path / "bayes-mixlaw-demo"
    first = cli.invoke(app, ["demo", "-o", str(folder), "--fast", "-q"])
    assert first.exit_code == 0, first.output
    written = (folder / "predictions.csv").read_text()
    again = cli.invoke(app, ["demo", "-o", str(folder), "--fast"])
    assert again.exit_code == 0, again.output
    assert "replacing the earlier demo's" in " ".join(again.output.split())
    assert (folder / "predictions.csv").read_text() == written  # same seed, same numbers

    other = tmp_path / "other"
    other.mkdir()
    (other / "fit.nc").write_text("my own notes")
    refused = cli.invoke(app, ["demo", "-o", str(other), "-q"])
    assert refused.exit_code == 2 and "is not an earlier demo's fit" in " ".join(refused.output.split())
    assert (other / "fit.nc").read_text() == "my own notes"
