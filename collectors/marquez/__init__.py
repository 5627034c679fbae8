"""Marquez, the OpenLineage server: run it locally, write events to it, read lineage back.

* :mod:`collectors.marquez.server` -- ``MarquezServer``: up/down/status/logs without Docker
* :mod:`collectors.marquez.client` -- ``MarquezClient``: REST reads with paging, writes
* :mod:`collectors.marquez.collect` -- copying events between Marquez and the embedded store
"""

from collectors.marquez.client import LineageView, MarquezClient, MarquezHTTPError
from collectors.marquez.server import MarquezServer, ServerInfo

__all__ = ["LineageView", "MarquezClient", "MarquezHTTPError", "MarquezServer", "ServerInfo"]
