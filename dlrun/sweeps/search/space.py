"""The search space in hydra-optuna-sweeper's syntax, as Optuna >= 4 distributions.

`choice(a, b)` and `a,b` -> categorical; `range(lo, hi, step)` -> int (or float) with a step;
`interval(lo, hi)` -> float (`int(interval(...))`: int); `tag(log, interval(...))` -> log scale.
Anything that is not a sweep is a fixed override passed to every trial.
"""

from __future__ import annotations

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from dlrun.errors import ConfigError

_CHOICE_TYPES = (str, int, float, bool, type(None))


def _choices(override: Override) -> CategoricalDistribution:
    choices = list(override.sweep_iterator(transformer=Transformer.encode))
    for c in choices:
        if not isinstance(c, _CHOICE_TYPES):
            raise ConfigError(override.get_key_element(), c, "a choice of str, int, float, bool or null")
    return CategoricalDistribution(choices)


def distribution(override: Override) -> BaseDistribution | str:
    """One override -> an Optuna distribution, or its value string when it is not a sweep."""
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep():
        return _choices(override)
    if override.is_range_sweep():
        if value.shuffle:
            return _choices(override)
        values = list(override.sweep_iterator())  # range's stop is excluded, Optuna's high is included
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            return FloatDistribution(min(values), max(values), step=abs(value.step))
        return IntDistribution(min(values), max(values), step=abs(int(value.step)))
    if override.is_interval_sweep():
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ConfigError(override.get_key_element(), override.get_value_element_as_str(),
                      "choice(...), range(...), interval(...) or tag(log, interval(...))")


def parse(arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """(search space, fixed overrides) of `hydra.sweeper.params` entries and command-line overrides."""
    space, fixed = {}, {}
    for override in OverridesParser.create().parse_overrides(arguments):
        key = override.get_key_element()
        value = distribution(override)
        if isinstance(value, BaseDistribution):
            space[key] = value
            fixed.pop(key, None)
        else:  # a fixed value on the command line replaces the searched one
            fixed[key] = value
            space.pop(key, None)
    return space, fixed


def grid(space: dict[str, BaseDistribution]) -> dict[str, list]:
    """GridSampler's lists: every value of each (discrete) distribution."""
    out = {}
    for name, d in space.items():
        if isinstance(d, CategoricalDistribution):
            out[name] = list(d.choices)
        elif isinstance(d, (IntDistribution, FloatDistribution)) and d.step is not None and not d.log:
            n = int(round((d.high - d.low) / d.step)) + 1
            out[name] = [d.low + i * d.step if isinstance(d, IntDistribution) else round(d.low + i * d.step, 12)
                         for i in range(n)]
        else:
            raise ConfigError(f"hydra.sweeper.params.{name}", d, "a grid needs choice(...) or range(...), "
                              "not an interval")
    return out
