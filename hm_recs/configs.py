"""Run configuration from the core's own configuration dataclasses: each setting is declared once, in `core` or
`models` (name, type, default), and the Dagster config class a stage shows in the launchpad is derived from it.

    class RankerModelConfig(config_of(RankerConfig, exclude=("seed",))):
        refit: str = "pooled"   # the stage's own settings beside the core's

    ranker_config = core_config(RankerConfig, config, seed=settings.seed)
"""

from __future__ import annotations

import dataclasses
import types
import typing

import dagster as dg
import pydantic

_PLAIN = (int, float, str, bool)


def _config_type(hint):
    """The launchpad's type for a dataclass field's type: plain values, optional plain values and lists of them
    (a tuple becomes a list); None for what run configuration cannot carry."""
    if hint in _PLAIN:
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return hint if len(inner) == 1 and inner[0] in _PLAIN else None
    if origin in (list, tuple) and args and args[0] in _PLAIN and (origin is list or args[1:] in ((), (...,))):
        return list[args[0]]
    return None


def config_of(core: type, exclude: tuple[str, ...] = (), base: type = dg.Config, **defaults) -> type[dg.Config]:
    """A `dg.Config` class (or a subclass of `base`, e.g. `dg.ConfigurableResource`) with a field for every field
    of the dataclass `core` that run configuration can carry (minus `exclude`), defaulting to the dataclass's
    defaults unless `defaults` overrides them."""
    hints = typing.get_type_hints(core)
    fields = {}
    for field in dataclasses.fields(core):
        kind = _config_type(hints[field.name])
        if field.name in exclude or kind is None:
            continue
        default = defaults.get(field.name, field.default)
        fields[field.name] = (kind, list(default) if isinstance(default, tuple) else default)
    unknown = set(defaults) - set(fields)
    if unknown:
        raise TypeError(f"{core.__name__} has no configurable fields {sorted(unknown)}")
    model = pydantic.create_model(f"{core.__name__}Fields", __base__=base, **fields)
    model.__doc__ = f"The fields of `{core.__module__}.{core.__name__}`."
    return model


def core_config(core: type, config, **given):
    """The dataclass `core` from the fields of `config` it shares (lists back to tuples), and the `given` values
    that the stage sets (the shared seed, a window)."""
    hints = typing.get_type_hints(core)
    values = {}
    for field in dataclasses.fields(core):
        if field.name in given:
            values[field.name] = given[field.name]
        elif hasattr(config, field.name):
            value = getattr(config, field.name)
            values[field.name] = tuple(value) if typing.get_origin(hints[field.name]) is tuple else value
    return core(**values)
