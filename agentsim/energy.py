"""Energy counters the machine exposes: RAPL (CPU packages) and NVML (GPUs).

The runner reads the counters when a run starts and when it ends and journals one ``energy``
event with the joules in between and where they came from. Where no counter can be read (no
``/sys/class/powercap``, no readable ``energy_uj``, no NVML) the event says so and carries
``joules: null``; reports then print "n/a" — no estimate is ever made up.

The counters measure the whole package or device, so on a shared machine they include other
processes' work; the event says ``scope: "machine"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

POWERCAP = Path("/sys/class/powercap")


def _rapl_domains(root: Path) -> list[Path]:
    """Top-level package domains (``intel-rapl:0``, not the ``intel-rapl:0:0`` sub-zones)."""
    if not root.is_dir():
        return []
    out = []
    for zone in sorted(root.iterdir()):
        if zone.name.count(":") == 1 and (zone / "energy_uj").is_file():
            try:
                int((zone / "energy_uj").read_text())
            except (OSError, ValueError):
                continue  # not readable (permissions): not a source
            out.append(zone)
    return out


def _nvml() -> Any:
    try:
        import pynvml  # type: ignore[import-not-found, unused-ignore]

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no library, no driver, no device: no NVML source
        return None


class EnergyMeter:
    """Cumulative energy readings in joules, keyed by source name."""

    def __init__(self, powercap: Path = POWERCAP) -> None:
        self.rapl = _rapl_domains(powercap)
        self.nvml = _nvml()
        self.gpus = self.nvml.nvmlDeviceGetCount() if self.nvml is not None else 0

    @property
    def sources(self) -> list[str]:
        return [f"rapl:{z.name}" for z in self.rapl] + [f"nvml:{i}" for i in range(self.gpus)]

    def read(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for zone in self.rapl:
            try:
                out[f"rapl:{zone.name}"] = int((zone / "energy_uj").read_text()) / 1e6
            except (OSError, ValueError):
                continue
        for i in range(self.gpus):
            try:
                handle = self.nvml.nvmlDeviceGetHandleByIndex(i)
                out[f"nvml:{i}"] = self.nvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1e3
            except Exception:  # a device that stops answering is left out, not guessed
                continue
        return out

    def _wrap(self, name: str) -> float:
        for zone in self.rapl:
            if f"rapl:{zone.name}" == name:
                try:
                    return int((zone / "max_energy_range_uj").read_text()) / 1e6
                except (OSError, ValueError):
                    return 0.0
        return 0.0

    def since(self, start: dict[str, float]) -> dict[str, Any]:
        """The ``energy`` event fields: joules since ``start`` (None when nothing measured)."""
        now = self.read()
        parts: dict[str, float] = {}
        for name, before in start.items():
            if name not in now:
                continue
            delta = now[name] - before
            if delta < 0:  # the RAPL counter wrapped
                delta += self._wrap(name)
            parts[name] = round(delta, 6)
        if not parts:
            return {
                "joules": None,
                "sources": [],
                "reason": "no readable RAPL (/sys/class/powercap) or NVML counter",
            }
        return {"joules": round(sum(parts.values()), 6), "sources": parts, "scope": "machine"}
