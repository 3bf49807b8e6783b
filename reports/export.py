"""Writing a report: one offline `index.html`, every figure as PDF, SVG and plotly JSON, every
table as CSV and LaTeX, and a manifest saying which study and trials each came from.

Static export uses plotly's kaleido, which drives a Chrome/Chromium (on Debian/Ubuntu:
`apt-get install chromium`). Without one the report is still written, HTML only, with a
warning. Output is deterministic: figure ids are the figure names, tables are sorted by the
analyses, and the creation dates Chrome writes into PDFs are fixed, so re-running on the same
study gives the same files.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from reports.artifact import Figure, Section, Table
from reports.display import for_display

PDF_DATE = re.compile(rb"/(CreationDate|ModDate) \(D:[0-9]{14}[^)]*\)")
SVG_UID = re.compile(rb'id="defs-([0-9a-f]{6})"')
FIXED_DATE = b"D:20000101000000+00'00'"
FIGURE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
STATIC_FORMATS = ("pdf", "svg")


@dataclass
class Manifest:
    """Every file of a report, with provenance."""

    studies: list[str] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)
    tables: list[dict] = field(default_factory=list)
    static_export: bool = True
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)


def _fixed_pdf_dates(data: bytes, *, name: str) -> bytes:
    # Same-length replacement: the PDF's cross-reference offsets stay valid.
    return PDF_DATE.sub(lambda m: b"/" + m.group(1) + b" (" + FIXED_DATE + b")", data)


def _fixed_svg_ids(data: bytes, *, name: str) -> bytes:
    # plotly.js draws every SVG with a random 6-hex-digit id; use one derived from the name.
    found = SVG_UID.search(data)
    if not found:
        return data
    fixed = hashlib.sha256(name.encode()).hexdigest()[:6].encode()
    return data.replace(found.group(1), fixed)


DETERMINISTIC = {"pdf": _fixed_pdf_dates, "svg": _fixed_svg_ids, "png": lambda data, name: data}
"""Per format: the exported bytes made independent of the moment and the run (PNG already is)."""

RASTER_SCALE = 2
"""PNG pixels per layout pixel: sharp on high-density screens and in a Markdown page."""


def browser_path() -> str | None:
    """The Chrome or Chromium kaleido would drive (None: none installed), found as kaleido's
    own browser library finds it."""
    from choreographer.browsers.chromium import chromium_based_browsers, get_browser_path

    return get_browser_path(chromium_based_browsers)


@contextmanager
def static_exporter(enabled: bool) -> Iterator[bool]:
    """Start kaleido's browser once for all figures; yield whether static export works.

    The browser is looked for first: kaleido's server thread dies on a missing browser while
    the first export then waits for it forever."""
    if not enabled:
        yield False
        return
    try:
        import kaleido

        if browser_path() is None:
            raise RuntimeError("no Chrome or Chromium found")
        kaleido.start_sync_server(silence_warnings=True)
    except Exception as exc:  # no Chrome/Chromium, or kaleido missing
        warnings.warn(
            f"static export (PDF/SVG) is off: {exc}. Install a Chrome or Chromium "
            "(Debian/Ubuntu: apt-get install chromium) to get PDF and SVG figures; the HTML "
            "report is complete without them.",
            stacklevel=2,
        )
        yield False
        return
    try:
        yield True
    finally:
        kaleido.stop_sync_server(silence_warnings=True)


def write_figure(figure: Figure, *, out: Path, static: bool,
                 formats: tuple[str, ...] = STATIC_FORMATS) -> dict:
    """Static files of one figure (``formats``, when ``static``); returns its manifest
    entry."""
    if not FIGURE_NAME.fullmatch(figure.name):
        raise ValueError(f"figure name {figure.name!r}: use lowercase letters, digits, . _ -")
    # Plotly's own JSON, always: what `python -m study.wandb_report` logs as an interactive
    # W&B chart, and what `plotly.io.read_json` redraws anywhere.
    path = out / "figures" / f"{figure.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pio.to_json(go.Figure(figure.figure), pretty=False))
    files = {"json": str(path.relative_to(out))}
    if static:
        drawn = go.Figure(figure.figure)
        for number, trace in enumerate(drawn.data):
            trace.uid = f"{number}"  # plotly.js would draw random trace ids into the SVG
        for fmt in formats:
            path = out / "figures" / f"{figure.name}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
            data = pio.to_image(drawn, format=fmt, **({"scale": RASTER_SCALE}
                                                      if fmt == "png" else {}))
            data = DETERMINISTIC[fmt](data, name=figure.name)
            path.write_bytes(data)
            files[fmt] = str(path.relative_to(out))
    return {
        "name": figure.name,
        "title": figure.title,
        "files": files,
        "study": figure.sources.study,
        "trials": list(figure.sources.trials),
    }


def write_table(table: Table, *, out: Path) -> dict:
    """CSV and LaTeX (booktabs) of one table; returns its manifest entry."""
    base = out / "tables" / table.name
    base.parent.mkdir(parents=True, exist_ok=True)
    table.frame.to_csv(base.with_suffix(".csv"), index=False)
    latex = table.frame.to_latex(
        index=False, escape=True, float_format=table.float_format.format, na_rep="--",
        caption=table.title, label=f"tab:{table.name}",
    )
    base.with_suffix(".tex").write_text(latex)
    return {
        "name": table.name,
        "title": table.title,
        "files": {"csv": f"tables/{table.name}.csv", "tex": f"tables/{table.name}.tex"},
        "study": table.sources.study,
        "trials": list(table.sources.trials),
    }


def render_index(sections: list[tuple[str, list[Section]]], *, manifest: Manifest) -> str:
    """The self-contained page (`templates/index.html.j2`): plotly.js inline once, then every
    section of every study; text is escaped, the tables' and figures' own HTML is not."""
    files_by_name = {f["name"]: f["files"] for f in manifest.figures}
    studies = [{"name": study, "sections": [_section_view(s, files_by_name=files_by_name)
                                            for s in study_sections]}
               for study, study_sections in sections]
    return _TEMPLATES.get_template("index.html.j2").render(
        studies=manifest.studies, warnings=manifest.warnings, studies_sections=studies,
        plotlyjs=get_plotlyjs())


_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("reports"), autoescape=True,
                                undefined=jinja2.StrictUndefined)


def _section_view(section: Section, *, files_by_name: dict[str, dict[str, str]]) -> dict:
    """What the template shows of one section: titles and notes as text, the tables and
    figures as the HTML pandas and plotly write."""
    tables = [{"title": t.title, "name": t.name,
               "html": t.frame.to_html(index=False, classes="table", border=0, na_rep="–",
                                       float_format=t.float_format.format)}
              for t in section.tables]
    figures = [{"title": f.title,
                "html": pio.to_html(for_display(f.figure), full_html=False,
                                    include_plotlyjs=False, div_id=f.name,
                                    config={"displaylogo": False, "responsive": True}),
                "files": sorted(files_by_name.get(f.name, {}).items())}
               for f in section.figures]
    return {"title": section.title, "notes": section.notes, "tables": tables,
            "figures": figures}
