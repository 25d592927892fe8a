"""Reports from templates (features.html): escaping, tables, figures, sections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.html import (
    Section,
    Text,
    display_value,
    figure,
    items,
    key_values,
    render_sections,
    table,
)


def test_given_values_when_displayed_then_one_format_for_every_report():
    assert display_value(True) == "yes" and display_value(np.bool_(False)) == "no"
    assert display_value(0.123456) == "0.1235" and display_value(np.float64(2.0)) == "2"
    assert display_value(float("nan")) == "" and display_value(None) == ""
    assert display_value(pd.NaT) == ""
    assert display_value(pd.Timestamp("2024-03-31 10:00")) == "2024-03-31"
    assert display_value([1, 0.5, "a"]) == "1; 0.5; a"
    assert display_value(np.int64(7)) == "7"


def test_given_a_page_of_sections_when_rendered_then_text_is_escaped_and_blocks_in_order():
    # Given sections with markup-like text, a long table, a figure and a list
    frame = pd.DataFrame({"name": ["<b>x</b>", "y", "z"], "value": [0.5, np.nan, 2.0]})
    sections = [
        Section("Summary <1>", (key_values({"rows": 3, "ok": True}), items(["a & b"]))),
        Section("Rows", (Text("the table"), table(frame, limit=2), table(frame.head(0)))),
        Section("Plot", (figure(b"\x89PNG fake", "a plot"),)),
    ]
    # When the page is rendered
    page = render_sections("Report <title>", sections, heading="Report — run <7>")
    # Then every value is escaped by the template engine, never executed as markup
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<title>Report &lt;title&gt;</title>" in page
    assert "<h1>Report — run &lt;7&gt;</h1>" in page
    assert "<h2>Summary &lt;1&gt;</h2>" in page and "<li>a &amp; b</li>" in page
    # And tables show the shared cell format, cut at the limit with a note, "none" when empty
    assert '<table class="kv">' in page and "<th>ok</th><td>yes</td>" in page
    assert "<td>0.5</td>" in page and "<td>z</td>" not in page
    assert "1 more rows in the CSV" in page and '<p class="muted">none</p>' in page
    # And the figure is embedded, the sections in their order
    assert 'alt="a plot" src="data:image/png;base64,iVBORyBmYWtl"' in page
    assert page.index("Summary") < page.index("<h2>Rows") < page.index("<h2>Plot")


def test_given_a_row_class_column_when_tabled_then_rows_carry_it():
    frame = pd.DataFrame({"grade": [1, 2], "traffic_light": ["green", "not assessable"]})
    block = table(frame, row_class="traffic_light")
    assert block.row_classes == ("green", "not-assessable")
    page = render_sections("t", [Section("s", (block,))])
    assert '<tr class="not-assessable">' in page


def test_given_an_unknown_column_for_row_classes_then_the_error_names_it():
    with pytest.raises(KeyError, match="missing"):
        table(pd.DataFrame({"a": [1]}), row_class="missing")
