"""The HTML report: one self-contained page to look at after a run.

Targets fixed over time, the per-step duration distribution, throttles and
retries over time, the outcome per account and AZ, and the per-target table
(sortable, filterable). Everything is inline (styles, script, the run's data as
JSON; the charts are SVG the script draws), and a Content-Security-Policy forbids
the page any request: it opens the same from a laptop, a CI artifact store or an
incident channel, offline. The data is :func:`remediate.reporters.html_data.report_data`.
"""

from __future__ import annotations

import json
from functools import cache
from html import escape
from importlib import resources

from remediate.reporters.files import FileReport
from remediate.reporters.html_data import report_data
from remediate.reporters.record import RunRecord

# No request of any kind: styles and scripts inline only, images only as data.
POLICY = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
          "img-src data:")
PANELS = (("chart-fixed", "Targets fixed over time"),
          ("chart-steps", "How long each step took"),
          ("chart-retries", "Throttles and retries over time"),
          ("chart-places", "Outcome per account and AZ"))


@cache
def asset(name: str) -> str:
    return resources.files("remediate.reporters").joinpath("html_assets", name).read_text(
        encoding="utf-8")


def script_json(value: object) -> str:
    """JSON safe inside <script>: no "<", ">" or "&" that could end or open a tag."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(record: RunRecord) -> str:
    data = report_data(record)
    mode = " (dry run)" if record.dry_run else ""
    when = " to ".join(t for t in (data["started_at"], data["finished_at"]) if t)
    panels = "\n".join(f'<section class="panel"><h2>{title}</h2><div id="{ident}"></div>'
                       "</section>" for ident, title in PANELS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>remediate run {escape(record.run_id)}{mode}</title>
<style>
{asset("report.css")}</style>
</head>
<body data-rendered="no">
<header><h1>remediate run {escape(record.run_id)}{mode}</h1>
<p>{escape(record.playbook)}{" &middot; " + escape(when) if when else ""}</p></header>
<main>
<noscript><p class="note">This report draws its charts and table with JavaScript; the
same data is in the JSON report (<code>--report json:PATH</code>).</p></noscript>
<pre id="errors"></pre>
<div id="cards" class="cards"></div>
<div id="notes"></div>
<div class="grid">
{panels}
</div>
<section class="panel"><h2>Targets</h2>
<div class="filters"><input id="text-filter" type="search" aria-label="filter targets"
placeholder="filter: id, AZ, error"> <select id="status-filter" aria-label="status"></select>
<span id="shown"></span></div>
<table id="targets"></table></section>
</main>
<script type="application/json" id="run-data">{script_json(data)}</script>
<script>
{asset("report.js")}</script>
</body>
</html>
"""


class HtmlReport(FileReport):
    def render(self, record: RunRecord) -> str:
        return page(record)
