"""Evidence downloads: bodies per second and MB/s from the fake Graph API (its own process, loopback) into
the local store, through the real path (claim, media API, limits, streamed body, digest, rename, mark),
and how much the downloading process's peak memory grows, to show a 100 MB document is streamed, not held.

    .venv/bin/python -m bench.evidence [--quick]

Bounded: a fixed list of bodies (about 260 MB in all; --quick about 30 MB), one run each.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import fresh_database  # noqa: E402
from core.media.fetch import EvidenceFetcher, fetch_pending_evidence  # noqa: E402
from core.media.graph_media import MediaApi  # noqa: E402
from core.media.limits import KB, MB  # noqa: E402
from core.media.store import LocalEvidenceStore  # noqa: E402
from core.storage.evidence import record_evidence  # noqa: E402
from core.storage.sqlite import SqliteDatabase  # noqa: E402
from local_host import fake_graph  # noqa: E402
from tests.conftest import free_port  # noqa: E402

# (kind, MIME, bytes per body, bodies)
CASES = [
    ("image", "image/jpeg", 150 * KB, 60),
    ("image", "image/jpeg", 4 * MB, 10),
    ("video", "video/mp4", 16 * MB, 4),
    ("document", "application/pdf", 100 * MB, 1),
]
QUICK = [("image", "image/jpeg", 150 * KB, 40), ("video", "video/mp4", 16 * MB, 1), ("document", "application/pdf",
                                                                                      8 * MB, 1)]
PATTERN = bytes(range(256)) * 4096  # 1 MB


def _chunks(size: int, salt: int, digest: list[bytes]) -> Iterator[bytes]:
    """A body of `size` bytes made chunk by chunk (never whole in this process), its digest at the end."""
    hasher = hashlib.sha256()
    head = salt.to_bytes(8, "big")
    hasher.update(head)
    yield head
    left = size - len(head)
    while left > 0:
        chunk = PATTERN[: min(left, len(PATTERN))]
        hasher.update(chunk)
        left -= len(chunk)
        yield chunk
    digest.append(hasher.digest())


def _upload(root: str, size: int, mime: str, salt: int) -> tuple[str, str]:
    digest: list[bytes] = []
    r = httpx.post(f"{root}/_media", content=_chunks(size, salt, digest), headers={"Content-Type": mime},
                   timeout=120)
    r.raise_for_status()
    answer = r.json()
    assert answer["sha256"] == digest[0].hex(), "the fake Graph API stored another body"
    return answer["id"], answer["sha256"]


async def _record(db: SqliteDatabase, message_id: str, media_id: str, kind: str, mime: str, sha: str) -> None:
    await db.write(lambda tx: record_evidence(tx, phone="5215500000000", message_id=message_id, media_id=media_id,
                                              kind=kind, mime=mime, sha256=sha, filename=None, now_ms=0))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


async def run(cases: list[tuple[str, str, int, int]]) -> None:
    port = free_port()
    proc = fake_graph.spawn(port)
    root = f"http://127.0.0.1:{port}"
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-evidence-") as tmp:
            db = SqliteDatabase(str(fresh_database(Path(tmp) / "bench.sqlite3")), pool_size=4)
            fetcher = EvidenceFetcher(db=db, api=MediaApi(f"{root}/v23.0", ""),
                                      store=LocalEvidenceStore(Path(tmp) / "evidencias"), batch=100)
            salt = 0
            for kind, mime, size, count in cases:
                for _ in range(count):
                    salt += 1
                    media_id, sha = _upload(root, size, mime, salt)
                    message_id = f"wamid.BENCH{salt:06d}"
                    await _record(db, message_id, media_id, kind, mime, sha)
                before = _peak_rss_mb()
                started = time.perf_counter()
                stored = await fetch_pending_evidence(fetcher)
                seconds = time.perf_counter() - started
                assert stored == count, f"{stored} of {count} stored"
                rows.append((kind, size, count, seconds, count * size / MB / seconds, count / seconds,
                             _peak_rss_mb() - before))
            await fetcher.aclose()
            db.close()
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"Evidence downloads, fake Graph API in its own process on loopback, local store, concurrency 4 "
          f"({platform.python_version()}, {platform.machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(f"{'kind':<9} {'body':>9} {'bodies':>6} {'seconds':>8} {'MB/s':>7} {'bodies/s':>9} {'peak RSS +MB':>12}")
    for kind, size, count, seconds, mbs, per_s, rss in rows:
        body = f"{size / MB:.1f} MB" if size >= MB else f"{size // KB} KB"
        print(f"{kind:<9} {body:>9} {count:>6} {seconds:>8.2f} {mbs:>7.1f} {per_s:>9.1f} {rss:>12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller bodies, for a fast look")
    args = parser.parse_args()
    asyncio.run(run(QUICK if args.quick else CASES))


if __name__ == "__main__":
    main()
