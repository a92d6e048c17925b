"""A self-contained HTML page: inline CSS, every image a base64 ``data:`` URI, no scripts, no
links to files or servers, so ``report.html`` opens from disk, in a mail, or from an artifact store."""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from typing import Sequence

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
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str],
          text_columns: Sequence[str] = ()) -> str:
    def cell(tag: str, header: str, value: str) -> str:
        classes = " ".join(c for c in ("text" if header in text_columns else "",
                                       "state" if header == "state" else "",
                                       "error" if header == "error" else "") if c)
        return f'<{tag} class="{classes}">{html.escape(value)}</{tag}>' if classes else f"<{tag}>{html.escape(value)}</{tag}>"

    head = "".join(cell("th", h, h) for h in headers)
    body = "\n".join(f'<tr class="{html.escape(cls)}">' + "".join(cell("td", h, v) for h, v in zip(headers, row)) + "</tr>"
                     for row, cls in zip(rows, row_classes))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def page(title: str, meta: Sequence[str], notes: Sequence[str], table_html: str,
         figures: Sequence[tuple[str, str, bytes]]) -> str:
    """``figures``: (heading, caption, PNG bytes). Returns the whole document."""
    meta_html = "".join(f'<div class="meta">{html.escape(line)}</div>' for line in meta)
    notes_html = ""
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        notes_html = f'<div class="notes"><strong>Missing or incomplete</strong><ul>{items}</ul></div>'
    figures_html = "\n".join(
        f'<h2>{html.escape(heading)}</h2>\n<figure><img alt="{html.escape(heading)}" src="{data_uri(png)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for heading, caption, png in figures)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
{meta_html}
<div class="meta">made {stamp} by <code>python -m sweep_report</code></div>
{notes_html}
<h2>Runs</h2>
{table_html}
{figures_html}
</body>
</html>
"""
