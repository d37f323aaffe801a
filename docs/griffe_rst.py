"""A Griffe extension for the API reference: the package's docstrings are written in reStructuredText habits
(``:class:`~x.Y``` roles, ``.. math::``, ``text::`` literal blocks, underlined section titles, simple tables);
mkdocstrings renders docstrings as Markdown. This rewrites each docstring's text before it is rendered:

- ``:class:`~a.b.C``` (and ``:func:``, ``:meth:``, ``:mod:``, ``:attr:``, ``:data:``, ``:exc:``, ``:obj:``) becomes a
  cross-reference that links where the target is in the API reference and stays plain code where it is not;
- ``:math:`x``` and ``.. math::`` become arithmatex's ``$x$`` and ``$$ ... $$`` (rendered by MathJax);
- a paragraph's closing ``::`` becomes ``:`` (the indented block after it is a code block in Markdown too);
- an underlined title becomes a bold line (no headings inside the API's table of contents);
- a simple table (``====  ====`` rules) becomes a Markdown table;
- a doctest block (``>>>`` lines) becomes a fenced code block.

The package's source is not changed. ``mkdocs.yml`` loads this file by path (``extensions: [docs/griffe_rst.py]``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")
MATH_ROLE = re.compile(r":math:`([^`]+)`")
RULE = re.compile(r"^(=+)(\s+=+)*\s*$")
UNDERLINE = re.compile(r"^([-=~^\"'`#*+])\1{2,}\s*$")


def _role(match: re.Match) -> str:
    kind, tilde, target = match.groups()
    target = target.strip()
    if "<" in target and target.endswith(">"):  # :class:`title <target>`
        title, target = target[:-1].split("<", 1)
        title = title.strip()
    else:
        title = target.rsplit(".", 1)[-1] if tilde else target
    if kind in ("func", "meth") and not title.endswith(")"):
        title += "()"
    return f'<autoref identifier="{target}" optional><code>{title}</code></autoref>'


def _math_blocks(lines: list[str]) -> list[str]:
    """``.. math:: first line`` with indented continuation lines -> a ``$$`` block."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(".. math::"):
            indent = line[: len(line) - len(stripped)]
            body = [stripped[len(".. math::") :].strip()]
            i += 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
                if not lines[i].strip() and (i + 1 >= len(lines) or len(lines[i + 1]) - len(lines[i + 1].lstrip()) <= len(indent)):
                    break
                body.append(lines[i].strip())
                i += 1
            body = [b for b in body if b]
            if out and out[-1].strip():
                out.append("")
            out.extend([f"{indent}$$", *(f"{indent}{b}" for b in body), f"{indent}$$", ""])
            continue
        out.append(line)
        i += 1
    return out


def _cells(text: str, starts: list) -> list[str]:
    """A simple table's row cut at its columns' starts (the last column runs to the end of the line)."""
    return [text[starts[k] : starts[k + 1]].strip().replace("|", "\\|") for k in range(len(starts) - 1)]


def _simple_tables(lines: list[str]) -> list[str]:
    """RST simple tables -> Markdown tables: a rule of ``=`` runs, the header, a rule, the rows, a rule; or without a
    header, a rule, the rows, a rule (Markdown needs a header row: it is left empty)."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() and RULE.match(lines[i].strip()):
            spans = [(m.start(), m.end()) for m in re.finditer(r"=+", lines[i])]
            rules = [j for j in range(i + 1, len(lines)) if lines[j].strip() and RULE.match(lines[j].strip())]
            if len(spans) >= 2 and rules:
                starts = [s for s, _ in spans] + [None]
                first = [j for j in range(i + 1, rules[0]) if lines[j].strip()]
                if len(first) == 1 and len(rules) >= 2:  # a header, then the rows
                    header = _cells(lines[first[0]], starts)
                    rows = [_cells(lines[j], starts) for j in range(rules[0] + 1, rules[1]) if lines[j].strip()]
                    end = rules[1]
                else:
                    header = [""] * len(spans)
                    rows = [_cells(lines[j], starts) for j in first]
                    end = rules[0]
                if out and out[-1].strip():
                    out.append("")
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "|".join("---" for _ in spans) + "|")
                out.extend("| " + " | ".join(row) + " |" for row in rows)
                out.append("")
                i = end + 1
                continue
        out.append(lines[i])
        i += 1
    return out


def _titles(lines: list[str]) -> list[str]:
    """``Title`` over a line of ``-`` (or ``=``, ``~``) of its length -> ``**Title**``."""
    out: list[str] = []
    for line in lines:
        if out and out[-1].strip() and UNDERLINE.match(line.strip()) and abs(len(line.strip()) - len(out[-1].strip())) <= 2:
            out[-1] = f"**{out[-1].strip()}**"
            out.append("")
            continue
        out.append(line)
    return out


def _literal_blocks(lines: list[str]) -> list[str]:
    """``text::`` -> ``text:`` and a lone ``::`` disappears (the indented block after it is a code block)."""
    out = []
    for line in lines:
        if line.strip() == "::":
            out.append("")
        elif line.rstrip().endswith("::") and not line.strip().startswith(".."):
            out.append(line.rstrip()[:-1])
        else:
            out.append(line)
    return out


def _doctests(lines: list[str]) -> list[str]:
    """A doctest block (``>>>`` lines and their output, up to a blank line) -> a fenced ``pycon`` block."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith(">>>"):
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i].lstrip())
                i += 1
            if out and out[-1].strip():
                out.append("")
            out.extend([f"{indent}```pycon", *(indent + b for b in block), f"{indent}```", ""])
            continue
        out.append(lines[i])
        i += 1
    return out


def rst_to_markdown(text: str) -> str:
    """The docstring ``text`` with the reStructuredText habits above rewritten as Markdown."""
    lines = _doctests(text.splitlines())
    lines = _math_blocks(lines)
    lines = _simple_tables(lines)
    lines = _titles(lines)
    lines = _literal_blocks(lines)
    text = "\n".join(lines)
    text = MATH_ROLE.sub(lambda m: f"${m.group(1).strip()}$", text)
    return ROLE.sub(_role, text)


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring as it is loaded (see the module docstring)."""

    def _rewrite(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)

    def on_instance(self, *, node: Any, obj: griffe.Object, agent: Any, **kwargs: Any) -> None:
        self._rewrite(obj)
