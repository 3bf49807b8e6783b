"""What an analysis hands to the report builder: figures and tables with their provenance.

Analyses compute data first (plain DataFrames, testable on known inputs) and then draw it;
both the figures and the tables they return carry the study and trial ids they came from, so
the manifest can say where every number in the paper came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go


@dataclass(frozen=True)
class Sources:
    """Provenance of a figure or table."""

    study: str
    trials: tuple[str, ...] = ()


@dataclass(frozen=True)
class Figure:
    """A plotly figure to export as HTML (in the index), PDF and SVG.

    Attributes:
        name: file stem, unique within a report (lowercase, digits, '_' and '-').
        title: caption shown in the index.
        figure: the plotly figure (its layout sets the size used for static export).
        sources: where its data came from.
    """

    name: str
    title: str
    figure: go.Figure
    sources: Sources


@dataclass(frozen=True)
class Table:
    """A table to export as CSV and LaTeX (booktabs) and show in the index."""

    name: str
    title: str
    frame: pd.DataFrame
    sources: Sources
    float_format: str = "{:.3f}"


@dataclass(frozen=True)
class Section:
    """One analysis' contribution to a report."""

    title: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
