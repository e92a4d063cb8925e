"""Each engine's ``[agents.X.options]``, as a schema: types, ranges, known keys.

The engines decode their options with these Structs, and ``agentsim validate`` checks a
scenario against the same ones, so a mistake (an ``error_rate`` of 7, a ``targt`` key, a
latency given as text) is one line before the run instead of a surprise in it. Light on
purpose: importing this module loads no engine.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import msgspec.inspect as mi

Prob = Annotated[float, msgspec.Meta(ge=0, le=1)]
NonNeg = Annotated[float, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=86_400)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
PositiveCount = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]

STRATEGIES = ("always_cooperate", "always_defect", "tit_for_tat", "grim_trigger", "random")
Strategy = Literal["always_cooperate", "always_defect", "tit_for_tat", "grim_trigger", "random"]


class _Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class Latency(_Options, frozen=True):
    """A latency distribution in seconds: ``fixed`` (``value``), ``uniform`` (``low``..
    ``high``) or ``lognormal`` (``mu``, ``sigma`` of the log)."""

    dist: Literal["fixed", "uniform", "lognormal"] = "fixed"
    value: Seconds = 0.0
    low: Seconds = 0.0
    high: Seconds = 0.0
    mu: Annotated[float, msgspec.Meta(ge=-20, le=5)] = -3.0
    sigma: Annotated[float, msgspec.Meta(ge=0, le=5)] = 0.5

    def __post_init__(self) -> None:
        if self.dist == "uniform" and self.high < self.low:
            raise ValueError(f"high: must be >= low ({self.low:g})")


class Rule(_Options, frozen=True):
    match: str
    reply: str

    def __post_init__(self) -> None:
        try:
            re.compile(self.match)
        except re.error as e:
            raise ValueError(f"match: must be a valid regular expression ({e})") from None


class ScriptedOptions(_Options, frozen=True):
    """The ``scripted`` engine (see ``agentsim.engines.scripted`` for what each does)."""

    table: str = ""
    error_rate: Prob = 0.0
    malformed_rate: Prob = 0.0
    conformity: Prob = 0.0
    script: list[str] = msgspec.field(default_factory=list)
    rules: list[Rule] = msgspec.field(default_factory=list)
    reply: str = "The answer is {gold}."
    latency_s: Seconds = 0.0
    latency: Latency | None = None
    slow: Annotated[float, msgspec.Meta(gt=0, le=1e6)] = 1.0
    crash_after: Count = 0
    strategy: Strategy | Literal[""] = ""
    p: Prob = 0.5
    talk: Literal["honest", "promise"] = "honest"
    sign: bool = True
    threshold: NonNeg | None = None


class ReplayOptions(_Options, frozen=True):
    """The ``replay`` engine: whose replies to replay from which journal; ``tools = "replay"``
    answers tool calls from the journal too (``"run"`` runs them again); ``pace`` takes the
    recorded engine time; ``fallback`` is the engine config used for requests the journal
    does not hold (a fork)."""

    journal: str
    agent: str
    tools: Literal["replay", "run"] = "replay"
    pace: bool = True
    fallback: dict[str, Any] | None = None


class MLCOptions(_Options, frozen=True):
    """The default ``mlc`` engine."""

    target: Literal["llvm", "cuda"] = "llvm"
    mcpu: str | None = None
    prefill_chunk: Annotated[int, msgspec.Meta(ge=1, le=65_536)] = 256
    context_length: Annotated[int, msgspec.Meta(ge=16, le=1_048_576)] | None = None
    reuse_prefix: bool = True
    #: memory-map the host's one copy of the weights (false: a private copy per agent)
    share_weights: bool = True


class OpenAIOptions(_Options, frozen=True):
    base_url: str = ""
    api_key: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 120.0

    def __post_init__(self) -> None:
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url: must start with http:// or https://")


class LlamaCppOptions(_Options, frozen=True):
    context_length: Annotated[int, msgspec.Meta(ge=16, le=1_048_576)] = 4096
    n_batch: Annotated[int, msgspec.Meta(ge=1, le=65_536)] = 512


class MLCLLMOptions(_Options, frozen=True):
    mode: Literal["local", "interactive", "server"] = "interactive"
    device: str | None = None
    model_lib: str | None = None


ENGINE_OPTIONS: dict[str, type[_Options]] = {
    "mlc": MLCOptions,
    "mlc-llm": MLCLLMOptions,
    "openai": OpenAIOptions,
    "llamacpp": LlamaCppOptions,
    "scripted": ScriptedOptions,
    "replay": ReplayOptions,
}
"""The options schema of every engine, by engine name."""


class OptionsError(ValueError):
    """Bad engine options. ``path`` is the key path under ``options`` (``["latency",
    "dist"]``), ``rule`` what it breaks, ``shows_value`` whether the value belongs after it."""

    def __init__(self, path: list[str], rule: str, *, shows_value: bool = True) -> None:
        super().__init__(".".join(["options", *path]) + " " + rule)
        self.path = path
        self.rule = rule
        self.shows_value = shows_value


T = TypeVar("T", bound=_Options)


def decode_options(raw: dict[str, Any], cls: type[T]) -> T:
    """``raw`` decoded as ``cls`` (an engine's options).

    Raises:
        OptionsError: the first problem.
    """
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as e:
        raise _explain(str(e), cls) from None


def check_options(engine: str, raw: dict[str, Any]) -> None:
    """Check ``raw`` against the options schema of ``engine`` (unknown engines: no check)."""
    cls = ENGINE_OPTIONS.get(engine)
    if cls is not None:
        decode_options(raw, cls)


_TYPES = {
    "object": "a table",
    "array": "an array",
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
}


def _type_words(spec: str) -> str:
    """msgspec's ``object | null`` → ``a table``."""
    names = [t.strip() for t in spec.split("|") if t.strip() != "null"]
    return " or ".join(_TYPES.get(n, n) for n in names) or spec


def _choices(cls: type[_Options], path: str) -> list[Any]:
    """The allowed values of the Literal field at ``path`` (``.latency.dist``), if any."""
    t: Any = mi.type_info(cls)
    for part in re.findall(r"\.([A-Za-z_]\w*)|\[\d+\]", path):
        while isinstance(t, mi.UnionType):
            t = next((x for x in t.types if isinstance(x, mi.StructType | mi.ListType)), t.types[0])
        if isinstance(t, mi.ListType):
            t = t.item_type
        if part and isinstance(t, mi.StructType):
            t = next((f.type for f in t.fields if f.name == part), None)
    values: list[Any] = []
    for x in t.types if isinstance(t, mi.UnionType) else [t]:
        if isinstance(x, mi.LiteralType):
            values += [v for v in x.values if v != ""]
    return values


def _explain(message: str, cls: type[_Options]) -> OptionsError:
    head, sep, at = message.rpartition(" - at `$")
    if not sep:
        head, at = message, ""
    at = at.rstrip("`")
    path = [p for p in re.split(r"\.|\[(\d+)\]", at) if p]
    unknown = re.match(r"Object contains unknown field `([^`]+)`", head)
    if unknown:
        return OptionsError([*path, unknown.group(1)], "is not a known key", shows_value=False)
    missing = re.match(r"Object missing required field `([^`]+)`", head)
    if missing:
        return OptionsError([*path, missing.group(1)], "is required", shows_value=False)
    enum = re.match(r"Invalid enum value (.+)$", head)
    if enum:
        allowed = ", ".join(str(v) for v in _choices(cls, at))
        return OptionsError(path, f"must be one of {allowed}")
    m = re.match(r"Expected `([^`]+)`(.*?)(?:, got `[^`]+`)?$", head)
    if m:
        typ, rest = m.group(1), m.group(2).strip()
        return OptionsError(path, f"must be {rest}" if rest else f"must be {_type_words(typ)}")
    field = re.match(r"(\w+): (.*)$", head)  # a __post_init__ check: "key: rule"
    if field:
        return OptionsError([*path, field.group(1)], field.group(2))
    return OptionsError(path, head[:1].lower() + head[1:])
