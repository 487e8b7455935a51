"""Driver for lemon24's `reader`, run by bench/compare.py as its own process.

    python bench/_reader.py add DB URLS_FILE   # register the feeds (not timed)
    python bench/_reader.py update DB          # one update_feeds(); prints JSON

`update` prints {"seconds": in-process time of update_feeds, "feeds": ...,
"broken": feeds whose last update failed}. reader keeps each feed's ETag and
Last-Modified and sends them itself, so a re-poll of unchanged feeds is
conditional.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import time
from pathlib import Path

# reader's vendored feedparser imports sgmllib, which Python 3 no longer has.
if importlib.util.find_spec("sgmllib") is None:
    sys.modules["sgmllib"] = importlib.import_module("feedparser_sgmllib")

from reader import make_reader

WORKERS = 4


def main(argv: list[str]) -> int:
    action, db = argv[0], argv[1]
    reader = make_reader(db)
    try:
        if action == "add":
            urls = Path(argv[2]).read_text(encoding="utf-8").split()
            for url in urls:
                reader.add_feed(url, exist_ok=True)
            print(json.dumps({"feeds": len(urls)}))
            return 0
        started = time.perf_counter()
        reader.update_feeds(scheduled=False, workers=WORKERS)
        seconds = time.perf_counter() - started
        counts = reader.get_feed_counts()
        print(json.dumps({"seconds": seconds, "feeds": counts.total, "broken": counts.broken}))
        return 0
    finally:
        reader.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
