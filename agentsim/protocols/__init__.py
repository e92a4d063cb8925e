"""Collaboration protocols. ``load_protocol_class`` resolves a built-in name or ``path.py:Class``.

``base`` holds the driver API protocols talk to (``TaskDriver``), ``BaseProtocol`` and the
phase machine; one module per protocol; ``common`` their shared helpers. Layer: may import
the bottom modules (chat, scenario schema...), tasks and tools; never agent internals, run,
report or cli — a protocol never touches sockets.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from agentsim.protocols.base import BaseProtocol

PROTOCOLS: dict[str, str] = {
    "solo": "agentsim.protocols.solo:Solo",
    "vote": "agentsim.protocols.vote:Vote",
    "debate": "agentsim.protocols.debate:Debate",
    "react": "agentsim.protocols.react:ReAct",
    "router": "agentsim.protocols.router:Router",
    "pipeline": "agentsim.protocols.pipeline:Pipeline",
    "manager": "agentsim.protocols.manager:Manager",
}


class ProtocolLoadError(ValueError):
    pass


def load_protocol_class(kind: str, base_dir: Path | None = None) -> type[BaseProtocol]:
    """A built-in protocol by name, or a user's class as ``file.py:Class`` / ``pkg.mod:Class``."""
    target = PROTOCOLS.get(kind, kind)
    module_name, _, cls_name = target.partition(":")
    if not cls_name:
        raise ProtocolLoadError(
            f"protocol.kind must be a built-in name or 'module:Class', got {kind!r}"
        )
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_absolute() and base_dir is not None and not path.exists():
            path = base_dir / path
        spec = importlib.util.spec_from_file_location(f"agentsim_user_{path.stem}", path)
        if spec is None or spec.loader is None or not path.exists():
            raise ProtocolLoadError(f"protocol.kind names a missing file {module_name!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except TypeError as e:  # a protocol class whose phase table is wrong, for one
            del sys.modules[spec.name]
            raise ProtocolLoadError(f"protocol.kind {kind!r}: {e}") from e
        except Exception as e:  # the user's file: one line, not a traceback
            del sys.modules[spec.name]
            raise ProtocolLoadError(
                f"protocol.kind file {module_name!r} failed to import: {e!r}"
            ) from e
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ProtocolLoadError(
                f"protocol.kind module {module_name!r} cannot be imported: {e}"
            ) from e
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseProtocol)):
        raise ProtocolLoadError(f"protocol.kind {kind!r} is not a BaseProtocol subclass")
    return cls
