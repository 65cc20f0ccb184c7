"""The field-worker panel: how many messages a worker sends before the bot gives a report number.

Reads the golden transcripts in tests/transcripts/ (each is exactly what the bot answers through the
real webhook path, checked by tests/test_transcripts.py) and counts, per conversation that files a
report, the worker's messages up to the reply with the first report number. A burst sent together
counts every message in it. Prints one row per conversation and the median.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

TRANSCRIPTS = Path(__file__).resolve().parent.parent / "tests" / "transcripts"
FILED = "registrado."


def messages_to_report(path: Path) -> int | None:
    """Worker messages before the first "Reporte *RPT-…* registrado." reply, or None if none is filed."""
    sent = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(("usuario: ", "usuario+: ")):
            sent += 1
        elif line.startswith("bot: ✅ Reporte *RPT-") and line.endswith(FILED):
            return sent
    return None


def panel() -> dict[str, int]:
    counts = {p.stem: messages_to_report(p) for p in sorted(TRANSCRIPTS.glob("*.txt"))}
    return {name: n for name, n in counts.items() if n is not None}


def main() -> int:
    counts = panel()
    total = len(list(TRANSCRIPTS.glob("*.txt")))
    print(f"{'conversación':34} {'mensajes hasta el número':>25}")
    for name, n in counts.items():
        print(f"{name:34} {n:>25}")
    print(f"\n{len(counts)} de {total} conversaciones registran un reporte; "
          f"mediana {statistics.median(counts.values()):g} mensajes, mínimo {min(counts.values())}, "
          f"máximo {max(counts.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
