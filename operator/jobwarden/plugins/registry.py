"""Plugin name → plugin class, and the Go `flag` parsing of `spec.plugins[<name>]` arguments.

`spec.plugins` maps a plugin name to CLI-style arguments (`{"ssh": ["--ssh-port=2222"]}`). Upstream
parses them with Go's `flag` package, where `-x` and `--x` are the same flag, `-x v` and `-x=v` both
set a value, and a bare boolean flag means true. A parse error is only logged upstream and the flags
parsed before it keep their values; here the errors are returned so the kind can report them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobwarden.core.plan import Manifest
from jobwarden.plugins.base import Flags, FlagValue, JobPlugin
from jobwarden.plugins.env import EnvPlugin
from jobwarden.plugins.ssh import SshPlugin
from jobwarden.plugins.svc import SvcPlugin

PLUGINS: Mapping[str, type[JobPlugin]] = {cls.name: cls for cls in (EnvPlugin, SshPlugin, SvcPlugin)}

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


@dataclass(frozen=True)
class ParsedFlags:
    flags: Flags
    error: str | None  # Go's message for the argument that stopped parsing


def parse_flags(args: Sequence[str], defaults: Mapping[str, FlagValue]) -> ParsedFlags:
    """Go `flag.FlagSet.Parse` over `args` for flags declared by their defaults (the default's type
    is the flag's type). Parsing stops at the first non-flag argument, at `--`, or at an error."""
    values = dict(defaults)
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if len(arg) < 2 or not arg.startswith("-") or arg == "--":
            break
        name, has_value, value = arg[2:] if arg.startswith("--") else arg[1:], False, ""
        if not name or name[0] in "-=":
            return ParsedFlags(Flags(values), f"bad flag syntax: {arg}")
        if "=" in name:
            name, value = name.split("=", 1)
            has_value = True
        if name not in defaults:
            return ParsedFlags(Flags(values), f"flag provided but not defined: -{name}")
        if not has_value and not isinstance(defaults[name], bool) and rest:
            value, has_value = rest.pop(0), True
        try:
            values[name] = _convert(name, defaults[name], value if has_value else None)
        except ValueError as error:
            return ParsedFlags(Flags(values), str(error))
    return ParsedFlags(Flags(values), None)


def _convert(name: str, default: FlagValue, value: str | None) -> FlagValue:
    """The flag's new value (`None`: the flag was given without one); ValueError carries Go's message."""
    if isinstance(default, bool):
        if value is None or value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError(f'invalid boolean value "{value}" for -{name}')
    if value is None:
        raise ValueError(f"flag needs an argument: -{name}")
    if isinstance(default, int):
        try:
            return int(value, 0)
        except ValueError:
            raise ValueError(f'invalid value "{value}" for flag -{name}') from None
    return value


def materialize(manifest: Manifest) -> Manifest:
    """`manifest` as it is created: each plugin fills in what its plan only asked for."""
    for cls in PLUGINS.values():
        manifest = cls.materialize(manifest)
    return manifest


@dataclass(frozen=True)
class PluginSet:
    plugins: tuple[JobPlugin, ...]  # in name order, so plans are deterministic (upstream: random)
    problems: tuple[str, ...]  # unknown plugins and argument errors, for a Warning event


def build_plugins(spec_plugins: Mapping[str, Sequence[str] | None]) -> PluginSet:
    plugins: list[JobPlugin] = []
    problems: list[str] = []
    for name in sorted(spec_plugins):
        cls = PLUGINS.get(name)
        if cls is None:
            problems.append(f"plugin {name} is not supported by jobwarden and is ignored")
            continue
        parsed = parse_flags(spec_plugins[name] or [], cls.flag_defaults)
        if parsed.error:
            problems.append(f"plugin {name}: {parsed.error}")
        plugins.append(cls.from_flags(parsed.flags))
    return PluginSet(tuple(plugins), tuple(problems))
