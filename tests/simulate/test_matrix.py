"""`matrix`: roles × every action per resource type, in four formats."""

from __future__ import annotations

import csv
import io

from gateway.simulate.catalog import catalog
from gateway.simulate.cli import main
from gateway.simulate.matrix import build_matrix, render


def test_every_schema_action_has_a_row_and_every_column_a_cell(bundle):
    matrix = build_matrix(bundle)
    actions = catalog(bundle).actions
    assert set(actions) == {"workspace", "experiment", "registered_model"}
    for rtype, names in actions.items():
        for action in names:
            for column in matrix.columns(rtype):
                assert (rtype, action, column) in matrix.cells


def test_role_semantics_of_the_default_policies(bundle):
    cells = build_matrix(bundle).cells
    assert cells[("experiment", "GetRun", "reader")].allowed
    assert not cells[("experiment", "LogMetric", "reader")].allowed
    assert cells[("experiment", "LogMetric", "group:editor")].allowed
    assert not cells[("experiment", "LogMetric", "private:group:manager")].allowed
    assert cells[("experiment", "LogMetric", "private:editor")].allowed
    assert not cells[("experiment", "GetRun", "none")].allowed
    assert cells[("experiment", "DeleteExperiment", "admin")].allowed
    assert not cells[("workspace", "SetArtifactLocation", "none")].allowed
    delete = cells[("registered_model", "DeleteModelVersion", "editor")]
    assert delete.allowed and delete.in_production is False and delete.outcome == "allow*"
    assert cells[("registered_model", "DeleteModelVersion", "manager")].in_production is None


def test_text_markdown_csv_and_html(bundle, capsys):
    matrix = build_matrix(bundle)
    text = render(matrix, "text")
    assert "SetRegisteredModelTag" in text and "pgM: manager through a group, private" in text
    markdown = render(matrix, "markdown")
    assert "| `GetRun` | deny | allow |" in markdown
    rows = list(csv.DictReader(io.StringIO(render(matrix, "csv"))))
    assert len(rows) == len(matrix.cells)
    row = next(r for r in rows if r["action"] == "GetRun" and r["column"] == "reader")
    assert row["decision"] == "allow" and row["policies"] == "experiment-reader"
    page = render(matrix, "html")
    assert page.startswith("<!doctype html>") and '<td class="allow">allow</td>' in page
    assert main(["matrix", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("resource_type,action,column,decision")
