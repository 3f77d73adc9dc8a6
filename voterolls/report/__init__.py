"""The offline HTML report: gather aggregates (``data``), draw SVG (``charts``), render (``render``)."""

from voterolls.report.data import gather
from voterolls.report.model import ReportData
from voterolls.report.render import render, write_report

__all__ = ["ReportData", "gather", "render", "write_report"]
