"""Plugin name → plugin class, the plugin names admission accepts, and the Go `flag` parsing of
`spec.plugins[<name>]` arguments: the one source of truth for all three.

`spec.plugins` maps a plugin name to CLI-style arguments (`{"ssh": ["--ssh-port=2222"]}`). Upstream
parses them with Go's `flag` package (`flag.FlagSet.Parse`, ContinueOnError), where `-x` and `--x` are
the same flag, `-x v` and `-x=v` both set a value, a bare boolean flag means true, a repeated flag's last
value wins, and parsing stops at the first non-flag argument, at `--`, or at the first error. A parse
error is only logged upstream and the flags parsed before it keep their values; here the errors are
returned: admission refuses them at create time (400), and a job stored without the webhook gets a
Warning `PluginError` from the kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobwarden.core.plan import Manifest
from jobwarden.plugins.base import Flags, FlagValue, JobPlugin
from jobwarden.plugins.env import EnvPlugin
from jobwarden.plugins.hcclrank import HcclRankPlugin
from jobwarden.plugins.mpi import MpiPlugin
from jobwarden.plugins.pytorch import PytorchPlugin
from jobwarden.plugins.ssh import SshPlugin
from jobwarden.plugins.svc import SvcPlugin
from jobwarden.plugins.tensorflow import TensorflowPlugin

PLUGINS: Mapping[str, type[JobPlugin]] = {
    cls.name: cls
    for cls in (SshPlugin, EnvPlugin, SvcPlugin, TensorflowPlugin, MpiPlugin, PytorchPlugin, HcclRankPlugin)
}
# Upstream plugins jobwarden accepts but does not implement (a Warning `PluginError` says they do
# nothing): ray rewrites the head and worker containers' commands into `ray start …` and makes a
# Service of its own; not done yet (README, "Not implemented").
UNIMPLEMENTED_PLUGINS: tuple[str, ...] = ("ray",)
# Every plugin name admission accepts, in upstream's order.
KNOWN_PLUGINS: tuple[str, ...] = (*PLUGINS, *UNIMPLEMENTED_PLUGINS)
MPI_FLAGS: Mapping[str, FlagValue] = MpiPlugin.flag_defaults

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


def argument_error(name: str, args: Sequence[str]) -> str | None:
    """What the plugin's own flag parser says about `args` (Go's message), None when they parse. A
    plugin jobwarden does not implement declares no flags here, so its arguments are not checked."""
    cls = PLUGINS.get(name)
    return parse_flags(args, cls.flag_defaults).error if cls is not None else None


def mpi_master(args: Sequence[str]) -> str:
    """The task upstream's mpi plugin treats as the master (`--master`, default `master`)."""
    return parse_flags(args, MPI_FLAGS).flags.text("master")


def materialize(manifest: Manifest) -> Manifest:
    """`manifest` as it is created: each plugin fills in what its plan only asked for."""
    for cls in PLUGINS.values():
        manifest = cls.materialize(manifest)
    return manifest


@dataclass(frozen=True)
class PluginSet:
    # In name order, so plans are deterministic (upstream: Go's random map order); a plugin that reads
    # what the others wrote (`runs_last`) after them.
    plugins: tuple[JobPlugin, ...]
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
    plugins.sort(key=lambda plugin: plugin.runs_last)  # stable: name order otherwise
    return PluginSet(tuple(plugins), tuple(problems))
