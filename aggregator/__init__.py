"""A feed aggregator: polls feeds, deduplicates entries, publishes merged feeds and a digest."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/aggregator-project/aggregator"
USER_AGENT = f"aggregator/{__version__} (+{PROJECT_URL})"
