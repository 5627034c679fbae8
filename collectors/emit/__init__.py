"""OpenLineage emission that never loses an event and never breaks a pipeline.

    from collectors.emit import emitter_from_config

    with emitter_from_config(lineage_option) as emitter:
        emitter.emit(run_event)        # True if delivered; spooled otherwise; never raises

``lineage-audit replay`` (or :func:`replay`) later delivers whatever was spooled.
"""

from collectors.emit.config import (
    default_spool_dir,
    default_store_path,
    emitter_from_config,
    lineage_home,
    parse_spec,
    resolve_transport_config,
    transport_from_config,
)
from collectors.emit.emitter import EmitStats, LineageEmitter, to_event_dict
from collectors.emit.replay import ReplayResult, replay
from lineage_auditor.scrub import scrub, scrub_text, scrub_url
from collectors.emit.spool import Spool
from collectors.emit.transports import (
    ConsoleTransport,
    DeliveryError,
    EmbeddedTransport,
    FileTransport,
    HttpTransport,
    NoopTransport,
    Transport,
)

__all__ = [
    "ConsoleTransport",
    "DeliveryError",
    "EmbeddedTransport",
    "EmitStats",
    "FileTransport",
    "HttpTransport",
    "LineageEmitter",
    "NoopTransport",
    "ReplayResult",
    "Spool",
    "Transport",
    "default_spool_dir",
    "default_store_path",
    "emitter_from_config",
    "lineage_home",
    "parse_spec",
    "replay",
    "resolve_transport_config",
    "scrub",
    "scrub_text",
    "scrub_url",
    "to_event_dict",
    "transport_from_config",
]
