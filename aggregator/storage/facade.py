"""The `Storage` facade, made of one part per domain.

Writes for one feed happen in one transaction, so a crash leaves either the
whole poll or none of it; polls that store nothing are grouped, many to a
transaction, and a crash loses at most their bookkeeping (those feeds are
simply polled again).
"""

from __future__ import annotations

from aggregator.storage.ingest import Ingest
from aggregator.storage.publishing import PublishingReads


class Storage(Ingest, PublishingReads):
    """All reads and writes the rest of the program makes, as plain records."""
