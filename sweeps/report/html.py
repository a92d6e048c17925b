"""A self-contained HTML page: inline CSS, every image a base64 ``data:`` URI, no links to files
or servers, so ``report.html`` opens from disk, in a mail, or from an artifact store. A study's
page also gets a sortable trial table (a few lines of inline script) and links between its
sections; a grid sweep's page has no script at all."""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from typing import NamedTuple, Sequence

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
tr.completed td.state { color: #2a7d2a; } tr.failed td, tr.failed td.state { color: #c0392b; }
tr.pruned td.state { color: #d35400; } tr.missing td, tr.running td { color: #888; }
td.error { white-space: normal; max-width: 28em; text-align: left; font-size: 0.9em; }
.notes { background: #fff6e5; border-left: 4px solid #f0a000; padding: 0.5em 1em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
code { background: #f4f4f4; padding: 0 3px; }
details summary { cursor: pointer; color: #444; margin: 0.5em 0; }
"""
# Only on a study's page: a long trial table scrolls inside its box, under its sticky header.
STUDY_CSS = """
.scroll { max-height: 70vh; overflow: auto; border: 1px solid #ddd; margin: 1em 0; }
.scroll table { margin: 0; }
table.sortable th { cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; } th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.front td { background: #fdeeee; }
"""
# Click a header to sort by it (again: reverse). Numbers sort as numbers; empty cells stay last.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var column = th.cellIndex, body = th.closest("table").tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    th.parentNode.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    function key(row) {
      var text = row.cells[column].textContent.trim(), number = Number(text);
      return text === "" ? null : isNaN(number) ? text.toLowerCase() : number;
    }
    var rows = Array.prototype.slice.call(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null || y === null) return (x === null) - (y === null);
      var order = typeof x !== typeof y ? (typeof x === "number" ? -1 : 1) : x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


class Figure(NamedTuple):
    heading: str
    caption: str
    png: bytes
    anchor: str | None = None                      # the section's id, for links within the page
    see_also: Sequence[tuple[str, str]] = ()       # (anchor, text): links to related sections


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str],
          text_columns: Sequence[str] = (), sortable: bool = False) -> str:
    def cell(tag: str, header: str, value: str) -> str:
        classes = " ".join(c for c in ("text" if header in text_columns else "",
                                       "state" if header == "state" else "",
                                       "error" if header == "error" else "") if c)
        return f'<{tag} class="{classes}">{html.escape(value)}</{tag}>' if classes else f"<{tag}>{html.escape(value)}</{tag}>"

    head = "".join(cell("th", h, h) for h in headers)
    body = "\n".join(f'<tr class="{html.escape(cls)}">' + "".join(cell("td", h, v) for h, v in zip(headers, row)) + "</tr>"
                     for row, cls in zip(rows, row_classes))
    if sortable:
        head = head.replace("<th", '<th title="click to sort"')
        return (f'<div class="scroll"><table class="sortable">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
                f"</tbody>\n</table></div>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def figure_html(figure: Figure) -> str:
    heading, caption = html.escape(figure.heading), html.escape(figure.caption)
    anchor = f' id="{html.escape(figure.anchor)}"' if figure.anchor else ""
    links = " ".join(f'<a href="#{html.escape(target)}">{html.escape(text)}</a>' for target, text in figure.see_also)
    caption += f" See also: {links}." if links else ""
    return (f'<h2{anchor}>{heading}</h2>\n<figure><img alt="{heading}" src="{data_uri(figure.png)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def page(title: str, meta: Sequence[str], notes: Sequence[str], table_html: str,
         figures: Sequence[tuple[str, str, bytes] | Figure], table_heading: str = "Runs",
         study: bool = False) -> str:
    """``figures``: (heading, caption, PNG bytes) or ``Figure``s. ``study``: the page of an Optuna
    study (its CSS and the table-sorting script). Returns the whole document."""
    meta_html = "".join(f'<div class="meta">{html.escape(line)}</div>' for line in meta)
    notes_html = ""
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        notes_html = f'<div class="notes"><strong>Missing or incomplete</strong><ul>{items}</ul></div>'
    figures_html = "\n".join(figure_html(f if isinstance(f, Figure) else Figure(*f)) for f in figures)
    css = CSS + (STUDY_CSS if study else "")
    script = f"<script>{SORT_SCRIPT}</script>\n" if study else ""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{css}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
{meta_html}
<div class="meta">made {stamp} by <code>python -m sweeps.report</code></div>
{notes_html}
<h2>{html.escape(table_heading)}</h2>
{table_html}
{figures_html}
{script}</body>
</html>
"""


def details(summary: str, inner_html: str, open_: bool = False) -> str:
    """A section the reader opens with a click (no script: the browser's own <details>)."""
    return f"<details{' open' if open_ else ''}><summary>{html.escape(summary)}</summary>\n{inner_html}\n</details>"


def sentences(items: Sequence[str]) -> str:
    return "<ul class=\"sentences\">" + "".join(f"<li>{html.escape(s)}</li>" for s in items) + "</ul>"
