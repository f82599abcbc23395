"""Declarative checks for estimator parameters.

Each estimator lists ``_parameter_rules = {"name": rule, ...}``; the rules
run in ``fit`` and raise a ``ValueError`` (or ``TypeError``) that names the
estimator, the parameter, what is allowed and what was given.
"""

import numbers

import numpy as np


class Rule:
    description = ""

    def accepts(self, value):  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, owner, name, value):
        if not self.accepts(value):
            raise ValueError(
                f"The {name!r} parameter of {owner} must be "
                f"{self.description}; got {value!r}."
            )


class Integer(Rule):
    def __init__(self, low=None, high=None, allow_none=False):
        self.low, self.high, self.allow_none = low, high, allow_none
        bounds = []
        if low is not None:
            bounds.append(f">= {low}")
        if high is not None:
            bounds.append(f"<= {high}")
        self.description = "an int" + (" " + " and ".join(bounds) if bounds else "")
        if allow_none:
            self.description += " or None"

    def accepts(self, value):
        if value is None:
            return self.allow_none
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            return False
        return (self.low is None or value >= self.low) and (
            self.high is None or value <= self.high
        )


class Real(Rule):
    def __init__(self, low=None, high=None, low_open=False, high_open=False, allow_none=False):
        self.low, self.high = low, high
        self.low_open, self.high_open = low_open, high_open
        self.allow_none = allow_none
        bounds = []
        if low is not None:
            bounds.append(("> " if low_open else ">= ") + f"{low}")
        if high is not None:
            bounds.append(("< " if high_open else "<= ") + f"{high}")
        self.description = "a float" + (" " + " and ".join(bounds) if bounds else "")
        if allow_none:
            self.description += " or None"

    def accepts(self, value):
        if value is None:
            return self.allow_none
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            return False
        if not np.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True


class Options(Rule):
    def __init__(self, *options):
        self.options = options
        self.description = "one of " + ", ".join(repr(o) for o in options)

    def accepts(self, value):
        return any(value == o and type(value) is type(o) for o in self.options)


class LayerSizes(Rule):
    description = "a tuple of positive ints (an empty tuple for no hidden layer)"

    def accepts(self, value):
        if not isinstance(value, (tuple, list)):
            return False
        return all(Integer(low=1).accepts(v) for v in value)


class AnyOf(Rule):
    def __init__(self, *rules):
        self.rules = rules
        self.description = " or ".join(r.description for r in rules)

    def accepts(self, value):
        return any(r.accepts(value) for r in self.rules)


class Anything(Rule):
    description = "anything"

    def accepts(self, value):
        return True


def validate_params(estimator):
    """Run every rule of ``estimator._parameter_rules`` on its parameters."""
    params = estimator.get_params(deep=False)
    owner = type(estimator).__name__
    for name, rule in estimator._parameter_rules.items():
        rule.check(owner, name, params[name])
