"""Refuse, in one line, a Python the app cannot run on. Azure Functions offers 3.10-3.13; the code uses
3.11 features (asyncio.timeout, enum.StrEnum), so 3.11, 3.12 and 3.13 are the supported ones."""

import sys

SUPPORTED = ((3, 11), (3, 12), (3, 13))

if sys.version_info[:2] not in SUPPORTED:
    found = ".".join(map(str, sys.version_info[:3]))
    sys.exit(f"Python {found} is not supported: use 3.11, 3.12 or 3.13 (e.g. make PY=python3.12 test)")
