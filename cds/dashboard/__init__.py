"""The feedback dashboard (``/admin/dashboard``): the weekly report as charts and tables on one
self-contained page, drawn from the same report ``cds report --json --by week`` prints."""

from cds.dashboard.figures import Figures, figures
from cds.dashboard.page import HEADERS, render_page

__all__ = ["HEADERS", "Figures", "figures", "render_page"]
