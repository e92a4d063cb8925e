"""agentsim: study small language models deployed as agents."""

import sys as _sys

__version__ = "0.1.0"

if "structlog" not in _sys.modules and "rich" not in _sys.modules:
    # structlog imports rich (when installed) at import time only to pretty-print tracebacks
    # in its console renderer; agentsim's logs are JSON lines or plain console lines, and that
    # import is ~60 ms of CPU in every agent process's start. Import structlog without it;
    # rich itself stays importable (the CLI's progress display uses it).
    _sys.modules["rich"] = None  # type: ignore[assignment]  # makes `import rich` fail
    try:
        import structlog as _structlog  # noqa: F401
    finally:
        del _sys.modules["rich"]
