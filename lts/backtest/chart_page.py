"""The frame of LTS's offline chart pages (the backtest report, the sweep's heatmap): one HTML
file, its data as a script, its drawing code and plotly, all local files.

Where it sits: under :mod:`lts.backtest.report_html` and :mod:`lts.backtest.sweep_report`,
which write the content. A page loads only scripts of its own folder (``plotly.min.js``
copied from the pinned plotly package, no CDN) and has no inline script or event handler, so
it opens offline from disk and can be served under a Content-Security-Policy of
``script-src 'self'``. Text is the caller's to escape.
"""

import html
import shutil
from importlib import resources
from pathlib import Path

import msgspec

__all__ = ["BASE_STYLE", "meta_text", "page", "plot_text", "write_chart_files"]

#: What every page shares; a page adds its own rules after it.
BASE_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 16px; color: #222; }
h1 { font-size: 20px; margin: 16px 0 4px; } h2 { font-size: 16px; margin: 20px 0 6px; }
.sub { color: #666; margin: 0 0 8px; } .note { color: #666; font-size: 12px; }
table { border-collapse: collapse; } td, th { padding: 2px 12px 2px 0; text-align: left; }
tr:nth-child(even) { background: #f6f6f6; }
"""


def page(*, title: str, subtitle: str, note: str, without_script: str, body: str,
         style: str, scripts: tuple[str, str]) -> str:
    """A chart page: its heading, the chart's place, ``body`` under it, then plotly and the
    page's two scripts (its data, its drawing code). Every argument is escaped HTML already."""
    data, draw = scripts
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{BASE_STYLE}{style}</style>
</head>
<body>
<h1>{title}</h1>
<p class="sub">{subtitle}</p>
<div id="chart"></div>
<p class="note">{note}</p>
<noscript><p>{without_script}</p>
</noscript>
{body}
<script src="plotly.min.js"></script>
<script src="{data}"></script>
<script src="{draw}"></script>
</body>
</html>
"""


def write_chart_files(directory: Path, files: tuple[str, str, str, str], *, html: str,
                      global_name: str, data: object, script: str) -> list[Path]:
    """Write ``files`` (the page, its data script, its drawing script, plotly) into
    ``directory``: the data as ``window.<global_name> = <JSON>;``, the drawing script from this
    package's ``script`` file, plotly from the installed package."""
    directory.mkdir(parents=True, exist_ok=True)
    html_path, data_path, script_path, plotly_path = (directory / f for f in files)
    data_path.write_bytes(f"window.{global_name} = ".encode() + msgspec.json.encode(data)
                          + b";\n")
    script_path.write_bytes(resources.files("lts.backtest").joinpath(script).read_bytes())
    with resources.as_file(resources.files("plotly").joinpath("package_data", "plotly.min.js")
                           ) as source:
        shutil.copyfile(source, plotly_path)
    html_path.write_text(html, encoding="utf-8")
    return [html_path, data_path, script_path, plotly_path]


def plot_text(text: str) -> str:
    """Text plotly shows as it is (plotly renders a few HTML tags and entities in labels)."""
    return html.escape(text, quote=True)


def meta_text(value: object) -> str:
    """A value the caller put on record, as one line of text (JSON where it is not text)."""
    if isinstance(value, str):
        return value
    try:
        return msgspec.json.encode(value).decode()
    except TypeError:
        return str(value)
