"""One downloader process for the multi-process evidence test: fetches every due row of a shared SQLite
file from the fake Graph API, then prints how many bodies it stored."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from core.media.fetch import EvidenceFetcher, fetch_pending_evidence
from core.media.graph_media import MediaApi
from core.media.store import LocalEvidenceStore
from core.storage.evidence import pending_evidence
from core.storage.sqlite import SqliteDatabase
from tests.evidence_support import TOKEN


async def main(db_path: str, base_url: str, root: str, claim_ms: str = "120000") -> int:
    db = SqliteDatabase(db_path, pool_size=2)
    fetcher = EvidenceFetcher(db=db, api=MediaApi(base_url, TOKEN), store=LocalEvidenceStore(Path(root)), batch=5,
                              claim_ms=int(claim_ms))
    stored = 0
    try:
        for _ in range(50):  # bounded: 20 rows in batches of 5 take a handful of rounds
            stored += await fetch_pending_evidence(fetcher)
            if not await pending_evidence(db, 1, now_ms=int(time.time() * 1000)):
                break
    finally:
        await fetcher.aclose()
        db.close()
    return stored


if __name__ == "__main__":
    print("guardadas", asyncio.run(main(*sys.argv[1:5])), flush=True)
