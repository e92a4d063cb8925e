"""agentsim: study small language models deployed as agents."""

__version__ = "0.1.0"
