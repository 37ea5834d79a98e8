"""Experiment configs: YAML files validated against a schema before anything runs.

A schema is a nested dict whose leaves are :class:`Field` objects. ``load_config`` reads a YAML
file with ``yaml.safe_load``, applies overrides given as dotted ``key.path=value`` strings, fills defaults,
and checks every key, type and range. Problems raise :class:`ConfigError` with a one-line
message naming the dotted key path, the value (quoted up to :data:`QUOTE_CHARS` characters) and what
was expected.

Reading is bounded: a config must be a regular file (not a FIFO, device or folder) of at most
:data:`CONFIG_MAX_BYTES`, in UTF-8; YAML anchors and aliases (``&a`` / ``*a``, whose expansion can
grow a small file into gigabytes) and duplicate keys are refused, as is nesting deeper than Python
can parse.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ..errors import RdaError
from ..safeio import read_capped as _read_capped

__all__ = ["ConfigError", "Field", "load_config", "validate", "validate_value", "apply_overrides", "dump_config",
           "read_capped", "read_yaml", "parse_yaml", "decode_text", "quote", "clip", "as_number", "check_written_size",
           "CONFIG_MAX_BYTES", "QUOTE_CHARS"]

CONFIG_MAX_BYTES = 1 << 20  # 1 MiB: a YAML config (ours are ~2 KB)
QUOTE_CHARS = 80  # the most of a value that an error message quotes

# Ceilings: every count and size a config (or a flag that sets one) may ask for, checked before any work
# (docs/reliability.md lists them). A list may hold at most MAX_ITEMS items unless its Field says less.
MAX_SEED = 2**32 - 1  # a seed (NumPy's and scikit-learn's range)
MAX_SEEDS = 1000  # seeds in one run (`seeds`, --seeds)
MAX_ITEMS = 1000  # items in any list (lambda values, digit counts, paths, detectors)
MAX_ITERATIONS = 10_000  # outer (alternating) iterations; ALM iterations of the RPCA baselines
MAX_EPOCHS = 10_000  # autoencoder epochs per outer iteration
MAX_STEPS = 1_000_000  # gradient steps per outer iteration (the table rule's schedule)
MAX_BATCH = 1 << 20  # mini-batch size
MAX_TREES = 10_000  # trees of a forest
MAX_DEPTH = 32  # layers of a network
MAX_ROWS = 10_000_000  # a count of rows (neighbours, rows for quadratic-cost baselines)
MAX_WORKERS = 256  # worker processes (--workers)


def clip(text, limit=QUOTE_CHARS):
    """``text`` cut to ``limit`` characters, the last an ellipsis when cut."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def quote(value, limit=QUOTE_CHARS):
    """``repr(value)``, cut to ``limit`` characters with an ellipsis (a message never carries a whole value)."""
    return clip(repr(value), limit)


def read_capped(path, limit, what="file"):
    """The bytes of the regular file ``path``, at most ``limit`` of them (see :func:`rda_cli.safeio.read_capped`);
    a refused file is a :class:`ConfigError` line naming ``what`` and the path."""
    return _read_capped(path, limit, what, error=ConfigError)


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors, aliases and duplicate mapping keys."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = event.start_mark
            raise ConfigError(f"YAML anchors and aliases (&name, *name) are not accepted (line {mark.line + 1}, "
                              f"column {mark.column + 1}); write the value out")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)  # merge keys first (as SafeConstructor does), then look for repeats
            seen = {}
            for key_node, _ in node.value:
                mark = key_node.start_mark
                key, where = self.construct_object(key_node, deep=True), f"line {mark.line + 1}, column {mark.column + 1}"
                try:
                    if key in seen:
                        raise ConfigError(f"duplicate key {quote(key)} at {where} (first at {seen[key]}); "
                                          "each key may appear once")
                    seen[key] = where
                except TypeError:
                    continue  # an unhashable key: SafeConstructor reports it
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text, where):
    """Parse YAML ``text`` with the strict loader; any problem is a one-line ConfigError naming ``where``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or _one_line(exc)
        raise ConfigError(f"{where}: malformed YAML{at}: {_one_line(problem)[:200]}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to read") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{where}: a value cannot be read ({_one_line(exc)[:200]})") from None


class ConfigError(RdaError):
    """A config problem, reported as one line."""


@dataclass
class Field:
    """One config value: its kind, default, constraints and documentation."""

    kind: str  # "int", "float", "bool", "str", "choice", "float_list", "int_list", "str_list"
    default: Any = None
    doc: str = ""
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple = ()
    min_length: int = 0
    max_length: int = MAX_ITEMS
    check: Callable[[Any], str | None] | None = field(default=None, repr=False)

    def describe(self):
        parts = {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "str": "a string",
            "choice": "one of " + ", ".join(repr(c) for c in self.choices),
            "float_list": "a list of numbers",
            "int_list": "a list of integers",
            "str_list": "a list of strings",
        }[self.kind]
        if self.minimum is not None:
            parts += f" {'>' if self.exclusive_minimum else '>='} {_show(self.minimum)}"
        if self.maximum is not None:
            parts += f" {'and ' if self.minimum is not None else ''}<= {_show(self.maximum)}"
        if self.kind.endswith("_list"):
            least = f"at least {self.min_length} item{'s' if self.min_length > 1 else ''}, " if self.min_length else ""
            parts += f" ({least}at most {self.max_length:,})"
        if self.nullable:
            parts += " or null"
        return parts


def _show(bound):
    """A bound as a message shows it: whole numbers with thousands separators (4,294,967,295), others as %g."""
    return f"{int(bound):,}" if float(bound).is_integer() and abs(bound) < 1e16 else f"{bound:g}"


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


# A number as a person types it: YAML 1.1 reads `1e-3` (no point) as text; such text is the number.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def as_number(value):
    """``value``, or the float a string in plain decimal notation spells (``"1e-3"`` -> 0.001): the one
    place where every float key (config files, ``--set``, ``rda detect --set``) reads what a person typed."""
    if isinstance(value, str) and len(value) <= 400 and _DECIMAL.fullmatch(value.strip()):
        return float(value)
    return value


def _check_range(f, v):
    if f.minimum is not None and (v < f.minimum or (f.exclusive_minimum and v == f.minimum)):
        return False
    if f.maximum is not None and v > f.maximum:
        return False
    return True


def validate_value(f: Field, value, path, label="config key"):
    """Check one value against its Field; errors read ``<label> '<path>': got ..., expected ...``."""
    return _validate_leaf(f, value, path, label)


def _validate_leaf(f: Field, value, path, label="config key"):
    def bad(extra=""):
        return ConfigError(f"{label} '{path}': got {quote(value)}, expected {f.describe()}{extra}")

    if value is None:
        if f.nullable:
            return None
        raise bad()
    if f.kind == "int":
        if not _is_int(value) or not _check_range(f, value):
            raise bad()
    elif f.kind == "float":
        value = as_number(value)
        if not _is_num(value) or not _check_range(f, value):
            raise bad()
        value = float(value)
    elif f.kind == "bool":
        if not isinstance(value, bool):
            raise bad()
    elif f.kind == "str":
        if not isinstance(value, str) or not value:
            raise bad()
    elif f.kind == "choice":
        if value not in f.choices:
            raise bad()
    elif f.kind in ("float_list", "int_list", "str_list"):
        ok_item = {"int_list": _is_int, "float_list": _is_num,
                   "str_list": lambda v: isinstance(v, str) and bool(v)}[f.kind]
        if isinstance(value, list) and f.kind == "float_list":
            value = [as_number(v) for v in value]
        if not isinstance(value, list) or not f.min_length <= len(value) <= f.max_length:
            raise bad()
        if not all(ok_item(v) and (f.kind == "str_list" or _check_range(f, v)) for v in value):
            raise bad()
        if len(set(value)) != len(value):
            raise bad(" without duplicates")
        value = [float(v) for v in value] if f.kind == "float_list" else list(value)
    if f.check is not None:
        msg = f.check(value)
        if msg:
            raise ConfigError(f"{label} '{path}': got {quote(value)}, {msg}")
    return value


def validate(raw, schema, path=""):
    """Return ``raw`` checked against ``schema`` with defaults filled in."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        where = f"config key '{path}'" if path else "config"
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {quote(raw)}")
    out = {}
    for key in raw:
        if key not in schema:
            full = clip(f"{path}.{key}" if path else str(key))
            close = difflib.get_close_matches(str(key), [str(k) for k in schema], n=1, cutoff=0.5)
            hint = f"; did you mean '{(path + '.') if path else ''}{close[0]}'?" if close else ""
            valid = ", ".join(sorted(schema))
            raise ConfigError(f"unknown config key '{full}'{hint} (valid keys here: {valid})")
    for key, spec in schema.items():
        full = f"{path}.{key}" if path else key
        if isinstance(spec, dict):
            out[key] = validate(raw.get(key), spec, full)
        else:
            out[key] = _validate_leaf(spec, copy.deepcopy(raw.get(key, spec.default)), full)
    return out


def apply_overrides(raw, overrides):
    """Apply ``key.path=value`` strings (values parsed as YAML) to the raw config dict."""
    raw = copy.deepcopy(raw) if raw else {}
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"`overrides` {quote(item)}: expected KEY=VALUE, e.g. model.inner_epochs=5")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"`overrides` {quote(item)}: malformed key path {quote(key)}")
        value = parse_yaml(text, f"`overrides` {quote(item)}") if text.strip() else None
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return raw


def _one_line(exc):
    return " ".join(str(exc).split())


def decode_text(data, where):
    """``data`` (bytes) as UTF-8 text (a leading byte-order mark dropped); anything else is a one-line ConfigError."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                          "save it as UTF-8") from None


def read_yaml(path, what="config file", limit=CONFIG_MAX_BYTES):
    """The YAML mapping in ``path`` (an empty file: ``{}``), read within ``limit`` bytes (see :func:`read_capped`)."""
    path = Path(path)
    try:
        data = read_capped(path, limit, what)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    raw = parse_yaml(decode_text(data, f"{what} {path}"), f"{what} {path}")
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{what} {path}: expected a mapping of keys to values at the top level, "
                          f"got {type(raw).__name__} {quote(raw)}")
    return raw or {}


def load_config(path, schema, overrides=(), post_check=None):
    """Read, override and validate a config; ``post_check(config)`` may raise ConfigError."""
    raw = read_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, overrides)
    config = validate(raw, schema)
    check_written_size(config)
    if post_check is not None:
        post_check(config)
    return config


def check_written_size(config):
    """Refuse a config whose ``config.yaml`` (as a run writes it) would exceed :data:`CONFIG_MAX_BYTES`, so
    that every run a command starts can be resumed by the same command."""
    size = len(dump_config(config).encode())
    if size > CONFIG_MAX_BYTES:
        raise ConfigError(f"the config as a run writes it (config.yaml) takes {size:,} bytes, more than the "
                          f"{CONFIG_MAX_BYTES:,} a run reads back: shorten its lists")


def dump_config(config):
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
