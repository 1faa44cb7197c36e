"""How esiprov prints: columns that fit a terminal, tables and JSON streamed row by row."""
from __future__ import annotations

import json

from esiprov import cli, output

JOB_ID = "create:monitoring_worker:ese_physical_port:c0ffee00-1d2e-4f5a-8b9c-0123456789ab:1:xfqzo"


def _job_row(**extra):
    row = {"id": JOB_ID, "resource": "ese_physical_port:c0ffee00-1d2e-4f5a-8b9c-0123456789ab", "action": "create",
           "handler": "monitoring_worker", "attempts": 0, "status": "running", "waiting": "", "age": "3m",
           "error": "stack ese_physical_port_c0ffee00 is CREATE_FAILED: Resource CREATE failed"}
    return {**row, **extra}


def _fit(rows, width):
    columns = [c for c in cli.JOB_COLUMNS if c != "waiting"]
    return output.fit_columns(columns, output.natural_widths(rows, columns), width, cli.JOB_IMPORTANCE,
                              cli.JOB_WRAPPING)


def test_a_wide_terminal_shows_every_column():
    assert _fit([_job_row()], 400) == [c for c in cli.JOB_COLUMNS if c != "waiting"]


def test_a_100_column_terminal_keeps_the_whole_job_id_and_its_status_and_drops_the_rest():
    shown = _fit([_job_row()], 100)
    assert shown == ["id", "status"]
    widths = output.natural_widths([_job_row()], shown)
    assert sum(widths.values()) + output.GAP * (len(shown) - 1) <= 100


def test_columns_are_dropped_least_important_first_and_keep_their_order():
    shown = _fit([_job_row()], 87 + 3 + 7 + 3 + 3 + 3 + 20)
    assert shown == ["id", "status", "age", "error"]  # error counts at its narrowest wrap (20)


def test_the_most_important_column_stays_even_when_nothing_fits():
    assert _fit([_job_row()], 10) == ["id"]


def test_a_column_not_ranked_goes_before_every_ranked_one():
    widths = {"id": 10, "extra": 10, "status": 10}
    assert output.fit_columns(["id", "extra", "status"], widths, 23, ["id", "status"]) == ["id", "status"]


def test_a_streamed_table_aligns_columns_on_its_sample_and_has_no_trailing_blanks(capsys):
    rows = iter([{"type": "ese_device", "id": "a", "error": ""}, {"type": "t", "id": "bbbb", "error": "boom"}])
    assert output.stream_table(rows, ["type", "id", "error"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "TYPE         ID     ERROR"
    assert set(lines[1]) == {"─"}
    assert lines[2:] == ["ese_device   a", "t            bbbb   boom"]


def test_a_streamed_table_of_nothing_prints_nothing(capsys):
    assert output.stream_table(iter([]), ["a"]) == 0
    assert capsys.readouterr().out == ""


def test_streamed_json_is_one_array_with_one_element_per_line(capsys):
    output.stream_json(iter([{"a": 1}, {"b": [2]}]))
    text = capsys.readouterr().out
    assert json.loads(text) == [{"a": 1}, {"b": [2]}]
    assert text.splitlines()[1:3] == ['  {"a": 1},', '  {"b": [2]}']


def test_streamed_json_of_nothing_is_an_empty_array(capsys):
    output.stream_json(iter([]))
    assert json.loads(capsys.readouterr().out) == []
