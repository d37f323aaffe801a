"""MkDocs hooks of the documentation site (``mkdocs.yml``: ``hooks: [docs/hooks.py]``).

What the site shows from elsewhere in the repository is read from there at build time, never copied into ``docs/``:

- ``<!-- readme: TITLE -->`` in a page becomes the body of README.md's section ``## TITLE`` (``intro``: the text
  before the first section), its links rewritten for the site (images under ``docs/``, anchors of sections that
  live on other pages);
- ``<!-- cli-reference -->`` becomes the reference of every ``bayes-mixlaw`` command, from the Typer app
  (``bayes_mixlaw.cli:app``): usage, help, arguments and options with their defaults;
- ``<!-- registry: formats -->``, ``<!-- registry: acquisitions -->`` and ``<!-- registry: forms -->`` become tables of
  the registered input formats, acquisitions and mixing-law forms, from the registries themselves;
- the notebooks (``notebooks/*.ipynb``, rendered with their stored outputs by mkdocs-jupyter, not executed),
  ``benchmarks/README.md``'s figures and MathJax (from the ``django-static-mathjax`` package, so math renders with no
  network) are added to the site's files.
"""

from __future__ import annotations

import html
import re
import warnings
from pathlib import Path, PurePosixPath

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MATHJAX_DEST = "javascripts/mathjax/tex-svg.js"
DIRECTIVE = re.compile(r"^<!--\s*(readme:|registry:|cli-reference)\s*(.*?)\s*-->[ \t]*$", re.MULTILINE)  # alone on its line

# README.md's sections and the site's page that shows each (README's links to a section's anchor point there; a
# ``page#anchor`` where the page's heading differs from the README's)
README_SECTIONS = {
    "intro": "index.md",
    "Set-up (two commands, on a fresh machine with Python 3.12)": "getting-started.md",
    "Five-minute tour": "getting-started.md",
    "Running the pilots: the closed loop": "loop.md",
    "Reading the outputs": "outputs.md",
    "Input: the runs table": "input.md#the-runs-table",
    "The model": "model.md",
    "Validation on real data (tests/test_integration.py, benchmarks/)": "validation.md",
    "Limits": "validation.md",
}


# ---------------------------------------------------------------------------------------------------------------------
# files from elsewhere in the repository


def _mathjax_file() -> Path:
    """MathJax 3's single-file TeX-to-SVG build, as the ``django-static-mathjax`` package ships it."""
    try:
        import mathjax  # the django-static-mathjax package: MathJax's files under mathjax/static/mathjax
    except ImportError as err:
        raise RuntimeError("the docs need MathJax's files: pip install -e '.[docs]' (django-static-mathjax)") from err
    path = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg.js"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall django-static-mathjax")
    return path


@event_priority(100)  # before mkdocs-jupyter's on_files, so it renders the notebooks added here
def on_files(files: Files, config) -> Files:
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        files.append(File.generated(config, f"notebooks/{notebook.name}", abs_src_path=str(notebook)))
    for image in sorted((REPO / "benchmarks").glob("*.png")):
        files.append(File.generated(config, f"benchmarks/{image.name}", abs_src_path=str(image)))
    files.append(File.generated(config, MATHJAX_DEST, abs_src_path=str(_mathjax_file())))
    return files


def on_serve(server, config, builder):
    """``mkdocs serve`` rebuilds when README.md, the notebooks, the benchmarks' README or the package change."""
    for path in ("README.md", "notebooks", "benchmarks/README.md", "bayes_mixlaw"):
        server.watch(str(REPO / path))
    return server


# ---------------------------------------------------------------------------------------------------------------------
# README.md's sections


def readme_sections(text: str | None = None) -> dict[str, str]:
    """README.md's ``## `` sections by title (``intro``: the text between the title and the first section); fenced
    code blocks are skipped when looking for titles, so a ``# comment`` in a bash block is not one."""
    text = README.read_text(encoding="utf-8") if text is None else text
    sections: dict[str, list[str]] = {"intro": []}
    current, fenced = "intro", False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("# ") and current == "intro" and not sections["intro"]:
            continue  # the page title
        if not fenced and line.startswith("## "):
            current = line[3:].strip()
            sections[current] = []
            continue
        sections[current].append(line)
    return {title: "\n".join(lines).strip() + "\n" for title, lines in sections.items()}


def _slug(title: str) -> str:
    """The anchor that Python-Markdown's toc (and GitHub) gives a heading."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower())


def _relative(target: str, page_uri: str) -> str:
    """``target`` (a path under docs/) as a link from the page at ``page_uri``."""
    depth = len(PurePosixPath(page_uri).parent.parts)
    return "../" * depth + target


def readme_section(title: str, page_uri: str) -> str:
    sections = readme_sections()
    if title not in sections:
        raise KeyError(f"README.md has no section '## {title}' (it has: {', '.join(sections)})")
    body = sections[title]
    body = body.replace("](docs/", "](" + _relative("", page_uri))  # README's images live under docs/
    anchors = {_slug(t): page for t, page in README_SECTIONS.items()}

    def link(match: re.Match) -> str:
        anchor = match.group(1)
        page, _, own = anchors.get(anchor, page_uri).partition("#")
        if page == page_uri:
            return f"](#{own or anchor})"
        return f"]({_relative(page, page_uri)}#{own or anchor})"

    body = re.sub(r"\]\(#([\w-]+)\)", link, body)
    # the README's test marks mean nothing on the site
    return re.sub(r"<!--\s*readme-test:.*?-->\n?", "", body)


# ---------------------------------------------------------------------------------------------------------------------
# the command line's reference, from the Typer app


def _md(text: str) -> str:
    """Help text as Markdown text: HTML-escaped (``mix:<domain>``), Markdown's markup characters escaped."""
    text = html.escape(" ".join(str(text).split()), quote=False)
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", text)


def cli_reference() -> str:
    import typer.main

    from bayes_mixlaw.cli import app

    group = typer.main.get_command(app)
    root = group.make_context("bayes-mixlaw", [], resilient_parsing=True)
    lines = [
        f"{_md(group.help or '')}",
        "",
        "```text",
        "bayes-mixlaw [OPTIONS] COMMAND [ARGS]...",
        "```",
        "",
        "| Command | What it does |",
        "|---|---|",
    ]
    names = list(group.list_commands(root))
    for name in names:
        command = group.get_command(root, name)
        lines.append(f"| [`{name}`](#bayes-mixlaw-{name}) | {_md(command.get_short_help_str(limit=200))} |")
    for name in names:
        command = group.get_command(root, name)
        ctx = command.make_context(name, [], parent=root, resilient_parsing=True)
        usage = " ".join(command.collect_usage_pieces(ctx))
        lines += ["", f"## `bayes-mixlaw {name}` {{#bayes-mixlaw-{name}}}", "", _md(command.help or ""), "", "```text", f"bayes-mixlaw {name} {usage}", "```"]
        for kind, title in (("argument", "Arguments"), ("option", "Options")):
            records = [(p, p.get_help_record(ctx)) for p in command.params if p.param_type_name == kind]
            records = [(p, r) for p, r in records if r is not None]
            if not records:
                continue
            lines += ["", f"**{title}**", "", f"| {title[:-1]} | Description |", "|---|---|"]
            for _param, (opts, text) in records:
                flags = ", ".join(f"`{o.strip()}`" for o in opts.split(", "))
                lines.append(f"| {flags} | {_md(text)} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------------
# the registries' tables


def _module_file(module: str) -> str:
    """``bayes_mixlaw.formats.wide`` -> ``formats/wide.py`` (short enough for a table's column)."""
    return "`" + module.removeprefix("bayes_mixlaw.").replace(".", "/") + ".py`"


def registry_table(which: str) -> str:
    with warnings.catch_warnings():  # the forms import PyMC, whose dependencies' deprecation warnings are not the site's
        warnings.simplefilter("ignore")
        return _registry_table(which)


def _registry_table(which: str) -> str:
    if which == "formats":
        from bayes_mixlaw.formats import readers

        rows = [(f"`{r.name}`", str(r.priority), r.description, _module_file(type(r).__module__)) for r in readers()]
        head = ("`--format`", "auto-detection order", "description", "module")
    elif which == "acquisitions":
        from bayes_mixlaw.acquisitions import acquisitions

        rows = [
            (
                f"`{a.name}`",
                a.description,
                ", ".join(f"`{k}`: {v}" for k, v in a.options.items()) or "none",
                str(a.max_suggestions[0]) if a.max_suggestions else "none",
                _module_file(type(a).__module__ if type(a).__module__ != "bayes_mixlaw.acquisitions.base" else a._build.__module__),
            )
            for a in acquisitions()
        ]
        head = ("`--acquisition`", "description", "options", "at most", "module")
    elif which == "forms":
        from bayes_mixlaw.mixing_forms import forms

        rows = [
            (
                f"`{f.lookup_name}`",
                f.description,
                ", ".join(f"`{p}`" for p in f.parameter_names),
                ", ".join(f"`{p}`" for p in f.default_priors),
                _module_file(type(f).__module__),
            )
            for f in forms()
        ]
        head = ("`law:`", "description", "parameters", "default priors", "module")
    else:
        raise KeyError(f"no registry '{which}' (formats, acquisitions, forms)")

    def cell(text: str) -> str:
        return html.escape(text, quote=False).replace("|", "\\|") if not text.startswith("`") else text.replace("|", "\\|")

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------------


def on_page_markdown(markdown: str, page, config, files) -> str:
    def replace(match: re.Match) -> str:
        kind, argument = match.group(1).rstrip(":"), match.group(2)
        if kind == "readme":
            return readme_section(argument, page.file.src_uri)
        if kind == "cli-reference":
            return cli_reference()
        return registry_table(argument)

    if page.file.src_uri.endswith(".md"):
        return DIRECTIVE.sub(replace, markdown)
    return markdown
