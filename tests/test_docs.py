"""The documentation site (issue 17 item 7): ``mkdocs build --strict`` passes (warnings are errors), its key pages
hold what they promise, and the contributor page's walkthrough (a new mixing-law form, acquisition and input format,
each with its test) works as written.

The docs' packages are in the ``test`` extra, so under ``.ci/run`` a missing mkdocs is a failure, not a skip.
"""

from __future__ import annotations

import ast
import html
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

DOCS_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_jupyter", "pymdownx", "mathjax")


def _text(page: Path) -> str:
    """A built page's visible text: tags dropped, entities decoded, whitespace collapsed."""
    raw = page.read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [name for name in DOCS_PACKAGES if importlib.util.find_spec(name.split(".")[0]) is None]
    if missing:
        pytest.fail(f"the docs' packages are missing ({', '.join(missing)}): pip install -e '.[test]' (or '.[docs]')")
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    log = build.stdout + build.stderr
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{log[-6000:]}"
    assert not re.search(r"^(WARNING|ERROR)\b", log, flags=re.M), log[-6000:]
    return out


def test_key_pages_are_built(site):
    for page in ("index.html", "getting-started", "input", "outputs", "loop", "validation", "model", "cli", "contributing", "benchmarks"):
        path = site / page if page.endswith(".html") else site / page / "index.html"
        assert path.is_file(), f"{path} was not built"
    for page in ("laws", "config", "runs", "decisions", "report", "loop", "plugins", "internals"):
        assert (site / "api" / page / "index.html").is_file()
    assert (site / "javascripts" / "mathjax" / "tex-svg.js").stat().st_size > 1_000_000  # MathJax ships with the site
    assert (site / "images" / "5mix_shares.png").is_file() and (site / "benchmarks" / "bo_regret_regmix_256.png").is_file()


def _first_sentence(path: Path, class_name: str) -> str:
    """The first sentence of a class's docstring, its reStructuredText markup dropped as the site drops it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == class_name)
    text = " ".join(ast.get_docstring(node).split())
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], text).replace("``", "")
    return text.split(". ")[0][:120]


def test_api_reference_has_the_laws_docstrings(site):
    laws = _text(site / "api" / "laws" / "index.html")
    for module, name in (("nested", "NestedLaw"), ("mixing", "MixingLaw"), ("scaling", "ChinchillaLaw")):
        assert f"bayes_mixlaw.{module}.{name}" in (site / "api" / "laws" / "index.html").read_text(encoding="utf-8")
        assert "".join(_first_sentence(REPO / "bayes_mixlaw" / f"{module}.py", name).split()) in "".join(laws.split()), name
    for page in (site / "api").glob("*/index.html"):
        text = _text(page)
        leaks = re.findall(r":(?:class|func|meth|mod|attr|math):`|\.\. math::", text)
        assert not leaks, f"{page}: reStructuredText markup left in the rendered docstrings: {leaks[:3]}"
    assert 'class="arithmatex"' in (site / "api" / "internals" / "index.html").read_text(encoding="utf-8")  # .. math:: became MathJax


def test_cli_reference_lists_every_command_and_option(site):
    import typer.main

    from bayes_mixlaw.cli import app

    text = _text(site / "cli" / "index.html")
    group = typer.main.get_command(app)
    assert group.commands and {"fit", "predict", "optimize", "suggest", "report", "loop"} <= set(group.commands)
    for name, command in group.commands.items():
        assert f"bayes-mixlaw {name}" in text, name
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in text, f"{name} {opt}"
    assert "mix:<domain>" in text  # help text escaped, not swallowed as an HTML tag


def test_registry_tables_and_readme_sections(site):
    from bayes_mixlaw.acquisitions import acquisition_names
    from bayes_mixlaw.formats import reader_names
    from bayes_mixlaw.mixing_forms.base import packaged_form_names

    inputs, model, loop = (_text(site / page / "index.html") for page in ("input", "model", "loop"))
    assert all(name in inputs for name in reader_names()) and "Adding a format" not in inputs
    assert all(name in model for name in packaged_form_names()) and all(name in loop for name in acquisition_names())
    tour = _text(site / "getting-started" / "index.html")
    assert "bayes-mixlaw fit ../shared/data/mixinglaws/5Mix" in tour and "bayes-mixlaw optimize fit.nc" in tour
    for page in site.rglob("*.html"):
        assert "readme-test" not in page.read_text(encoding="utf-8"), page  # the README's test marks stay out of the site
    assert "Reading the outputs" in _text(site / "outputs" / "index.html") and "fit_converged" in _text(site / "outputs" / "index.html")
    model_html = (site / "model" / "index.html").read_text(encoding="utf-8")
    assert model_html.count('class="arithmatex"') > 50  # the math is typeset by MathJax in the browser


def test_benchmarks_and_notebooks_are_rendered(site):
    bench = _text(site / "benchmarks" / "index.html")
    headings = [line[3:].strip() for line in (REPO / "benchmarks" / "README.md").read_text(encoding="utf-8").splitlines() if line.startswith("## ")]
    assert headings and all(" ".join(h.replace("`", "").split())[:40] in bench for h in headings)
    for notebook in (REPO / "notebooks").glob("*.ipynb"):
        page = site / "notebooks" / notebook.stem / "index.html"
        assert page.is_file(), notebook.name
        assert "jp-OutputArea" in page.read_text(encoding="utf-8"), f"{notebook.name}: no stored outputs rendered"


# ---------------------------------------------------------------------------------------------------------------------
# the contributor page's walkthrough, run as written

BLOCK = re.compile(r'^```python title="([^"]+)"\n(.*?)^```', re.S | re.M)
LOADER = """
import importlib.util
import sys

spec = importlib.util.spec_from_file_location("project_conftest", {conftest!r})
project = importlib.util.module_from_spec(spec)
sys.modules["project_conftest"] = project
spec.loader.exec_module(project)
shared_data, mocked_sampling, mock_mixing_fit = project.shared_data, project.mocked_sampling, project.mock_mixing_fit

# the page's new modules, imported under the names they would have in the package (so they register themselves)
for name, path in {modules!r}:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
"""


def test_contributor_walkthrough_runs_as_written(tmp_path):
    """The page's three modules and three tests, written out, imported as the package's modules and run by pytest in
    a fresh process (this process's registries stay as the package has them)."""
    blocks = BLOCK.findall((REPO / "docs" / "contributing.md").read_text(encoding="utf-8"))
    modules = [(path, code) for path, code in blocks if path.startswith("bayes_mixlaw/")]
    tests = [(path, code) for path, code in blocks if path.startswith("tests/")]
    assert {Path(p).parent.name for p, _ in modules} == {"mixing_forms", "acquisitions", "formats"} and len(tests) == 3
    loaded = []
    for path, code in modules:
        target = tmp_path / "modules" / Path(path).name
        target.parent.mkdir(exist_ok=True)
        target.write_text(code, encoding="utf-8")
        assert not (REPO / path).exists(), f"{path} exists in the package: the walkthrough's example must be new"
        loaded.append((path.removesuffix(".py").replace("/", "."), str(target)))
    (tmp_path / "tests").mkdir()
    for path, code in tests:
        (tmp_path / "tests" / Path(path).name).write_text(code, encoding="utf-8")
    loader = LOADER.format(conftest=str(REPO / "tests" / "conftest.py"), modules=loaded)
    (tmp_path / "tests" / "conftest.py").write_text(textwrap.dedent(loader), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-o", "testpaths=", "-W", "ignore", str(tmp_path / "tests")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert re.search(r"\b6 passed\b", run.stdout), run.stdout[-3000:]
