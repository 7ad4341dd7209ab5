"""The roles × calls matrix of one policy set, per resource type.

Rows are the schema's actions; columns are the stand-in principals of `cells.COLUMNS`
(no role; reader, editor, manager directly and through a group; the same on a private
experiment; an administrator). Rendered as text, Markdown, CSV or HTML.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.authz.policies import PolicyBundle
from gateway.simulate.catalog import TYPE_LABELS, Catalog, catalog
from gateway.simulate.cells import COLUMNS, Cell, cell

FORMATS = ("text", "markdown", "csv", "html")
FOOTNOTE = (
    "* allowed except when the call touches Production: a version in or moving into "
    "Production, an alias pointing at one (or facts the gateway could not read)"
)
FOOTNOTE_DENY = "* denied except when the call touches Production"

Key = tuple[str, str, str]  # (resource type, action, column key)


@dataclass(frozen=True)
class Matrix:
    revision: str
    actions: dict[str, tuple[str, ...]]  # resource type → actions, in schema order
    cells: dict[Key, Cell]

    def columns(self, rtype: str) -> tuple[str, ...]:
        return tuple(c.key for c in COLUMNS[rtype])


def build_matrix(
    bundle: PolicyBundle, admin_groups: Iterable[str] = ("admins",), actions: Catalog | None = None
) -> Matrix:
    admin_groups = tuple(admin_groups)
    actions = actions or catalog(bundle)
    cells: dict[Key, Cell] = {}
    for rtype, names in actions.actions.items():
        for action in names:
            for column in COLUMNS[rtype]:
                cells[(rtype, action, column.key)] = cell(
                    bundle, rtype, action, column, admin_groups
                )
    return Matrix(bundle.revision, actions.actions, cells)


def render(matrix: Matrix, fmt: str = "text") -> str:
    return {"text": _text, "markdown": _markdown, "csv": _csv, "html": _html}[fmt](matrix)


def _legend(matrix: Matrix, short: bool = False) -> list[str]:
    seen: dict[str, str] = {}
    for rtype in matrix.actions:
        for c in COLUMNS[rtype]:
            seen.setdefault(c.short if short else c.key, c.label)
    return [f"{key}: {label}" for key, label in seen.items()]


def _rows(matrix: Matrix, rtype: str, short: bool = False) -> list[list[str]]:
    cols = matrix.columns(rtype)
    marks = {"allow": "yes", "deny": "-", "allow*": "yes*", "deny*": "-*"}
    return [
        [
            action,
            *(
                marks[o] if short else o
                for o in (matrix.cells[(rtype, action, c)].outcome for c in cols)
            ),
        ]
        for action in matrix.actions[rtype]
    ]


def _footnote(matrix: Matrix) -> list[str]:
    flagged = [c for c in matrix.cells.values() if c.in_production is not None]
    notes = []
    if any(c.allowed for c in flagged):
        notes.append(FOOTNOTE)
    if any(not c.allowed for c in flagged):
        notes.append(FOOTNOTE_DENY)
    return notes


def _text(matrix: Matrix) -> str:
    out = [f"policy revision {matrix.revision}"]
    for rtype in matrix.actions:
        header = ["action", *(c.short for c in COLUMNS[rtype])]
        rows = _rows(matrix, rtype, short=True)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        out += ["", f"{TYPE_LABELS[rtype]} ({len(rows)} actions)"]
        for row in [header, *rows]:
            out.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    out += ["", "columns:", *(f"  {line}" for line in _legend(matrix, short=True))]
    out += [f"  {n}" for n in _footnote(matrix)]
    return "\n".join(out) + "\n"


def _markdown(matrix: Matrix) -> str:
    out = [f"Policy revision `{matrix.revision}`."]
    for rtype in matrix.actions:
        header = ["action", *matrix.columns(rtype)]
        out += ["", f"### {TYPE_LABELS[rtype]}", ""]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join("---" for _ in header) + "|")
        for row in _rows(matrix, rtype):
            out.append("| " + " | ".join([f"`{row[0]}`", *row[1:]]) + " |")
    out += ["", "Columns:", ""] + [f"- {line}" for line in _legend(matrix)]
    out += [f"- {n}" for n in _footnote(matrix)]
    return "\n".join(out) + "\n"


def _csv(matrix: Matrix) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["resource_type", "action", "column", "decision", "in_production", "policies"])
    for (rtype, action, column), c in matrix.cells.items():
        production = "" if c.in_production is None else ("allow" if c.in_production else "deny")
        writer.writerow(
            [
                rtype,
                action,
                column,
                "allow" if c.allowed else "deny",
                production,
                " ".join(c.policy_ids),
            ]
        )
    return buffer.getvalue()


def _html(matrix: Matrix) -> str:
    esc = html.escape
    out = [
        "<!doctype html>",
        '<html><head><meta charset="utf-8"><title>Cedarflow roles and calls</title>',
        "<style>table{border-collapse:collapse;font:13px sans-serif}"
        "td,th{border:1px solid #ccc;padding:2px 6px}.allow{background:#d9f2d9}"
        ".deny{color:#999}</style></head><body>",
        f"<p>Policy revision <code>{esc(matrix.revision)}</code></p>",
    ]
    for rtype in matrix.actions:
        out.append(f"<h2>{esc(TYPE_LABELS[rtype])}</h2><table><tr><th>action</th>")
        out += [f"<th>{esc(c)}</th>" for c in matrix.columns(rtype)]
        out.append("</tr>")
        for action, *values in _rows(matrix, rtype):
            out.append(f"<tr><td><code>{esc(action)}</code></td>")
            out += [f'<td class="{v.rstrip("*")}">{esc(v)}</td>' for v in values]
            out.append("</tr>")
        out.append("</table>")
    out.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in _legend(matrix) + _footnote(matrix)))
    out.append("</ul></body></html>")
    return "\n".join(out) + "\n"
