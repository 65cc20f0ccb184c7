"""`python -m bench.noop_host [local_host options]`: the local host plus the no-op function of `bench/noop.py`.

Registers the no-op blueprint on `function_app.app` before `local_host` serves that same object, so
both functions go through the identical aiohttp -> func.HttpRequest -> func.HttpResponse path.
"""

from __future__ import annotations

import sys

from bench.noop import bp
from function_app import app
from local_host.__main__ import main

if __name__ == "__main__":
    app.register_functions(bp)
    sys.exit(main())
