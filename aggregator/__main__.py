"""`python -m aggregator` is the `aggregator` command."""

from aggregator.launch import entry

entry()
