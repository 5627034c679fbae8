"""Plots for the self-contained pages: matplotlib (headless) drawn into ``data:`` PNG URIs."""

from __future__ import annotations

import base64
import io
from functools import lru_cache
from typing import Any

from markupsafe import Markup


@lru_cache(maxsize=1)
def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_uri(fig: Any) -> Markup:
    """The figure as a ``data:image/png;base64,...`` URI (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    pyplot().close(fig)
    return Markup("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
