"""Small pieces of HTML for the report: escaped text, tables, PNG data URIs, counts and percentages.

Every helper escapes the text it is given, except where it says its input is HTML already (cells of
:func:`table`, values of :func:`kv_table`), so what a run folder holds never becomes markup.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any


def esc(value: Any) -> str:
    """Text escaped for HTML (quotes too: it also goes into attributes)."""
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    """PNG bytes as a data URI: the page carries its images inside it."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img(png: bytes, alt: str, cls: str = "") -> str:
    """An inline image tag of PNG bytes."""
    attr = f' class="{cls}"' if cls else ""
    return f'<img src="{data_uri(png)}" alt="{esc(alt)}"{attr}>'


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """A table of already-escaped cells; columns in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def kv_table(items: Sequence[tuple[str, str]]) -> str:
    """A two-column table of labels and values (values are HTML already)."""
    return '<table class="kv">' + "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in items) + "</table>"


def pre(text: str) -> str:
    """Preformatted, escaped text (configs, genotype descriptions)."""
    return f"<pre>{esc(text)}</pre>"


def details(summary: str, body: str) -> str:
    """A collapsible block: long content stays out of the way until opened."""
    return f"<details><summary>{esc(summary)}</summary>{body}</details>"


def note(text: str) -> str:
    """A muted paragraph for what a run lacks or how a figure was made."""
    return f'<p class="note">{esc(text)}</p>'


def count(n: int) -> str:
    """A parameter or multiply-add count with its unit (k, M, G)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}" if n < 100 * scale else f"{n / scale:.0f} {unit}"
    return str(n)


def pct(value: Any) -> str:
    """A fraction as a percentage with one decimal, "-" when missing."""
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


__all__ = ["count", "data_uri", "details", "esc", "img", "kv_table", "note", "pct", "pre", "table"]
