"""Declarative checks for estimator parameters.

Each estimator lists ``_parameter_rules = {"name": rule, ...}``; the rules
run in ``fit`` (and those of ``_prediction_parameters`` again when
predicting) and raise a ``ValueError`` that names the estimator, the
parameter, what is allowed and what was given.
"""

import numbers
import os

import numpy as np

#: Largest float32: a float parameter enters float32 training, where a
#: larger one becomes inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class Rule:
    description = ""

    def accepts(self, value):  # pragma: no cover - abstract
        raise NotImplementedError

    def problem(self, value):
        """What is wrong with ``value`` ("must be ..."), or None."""
        return None if self.accepts(value) else f"must be {self.description}"

    def check(self, owner, name, value):
        self._check(f"The {name!r} parameter of {owner}", value)

    def check_argument(self, name, value):
        """As :meth:`check`, for an argument of a function (a data loader's)."""
        self._check(name, value)

    def _check(self, subject, value):
        problem = self.problem(value)
        if problem is not None:
            raise ValueError(f"{subject} {problem}; got {value!r}.")


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
    """A float (or int) in the given bounds; with ``float32``, also within
    float32's range, for a value that enters float32 training."""

    def __init__(self, low=None, high=None, low_open=False, high_open=False, allow_none=False, float32=True):
        self.low, self.high = low, high
        self.low_open, self.high_open = low_open, high_open
        self.allow_none = allow_none
        self.float32 = float32
        bounds = []
        if low is not None:
            bounds.append(("> " if low_open else ">= ") + f"{low}")
        if high is not None:
            bounds.append(("< " if high_open else "<= ") + f"{high}")
        self.description = "a float" + (" " + " and ".join(bounds) if bounds else "")
        if allow_none:
            self.description += " or None"

    @staticmethod
    def _is_number(value):
        # float, int and their numpy kinds; not bool, nor Fraction or
        # pandas.NA, which the training code cannot use as numbers
        return not isinstance(value, (bool, np.bool_)) and isinstance(value, (float, numbers.Integral, np.floating))

    def _in_bounds(self, value):
        """A number, finite in float64 (or an int of any size), in the bounds."""
        if not self._is_number(value):
            return False
        if not isinstance(value, numbers.Integral) and not np.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def _beyond_float32(self, value):
        """In the bounds, but too large for the float32 it is used in."""
        return self.float32 and self._in_bounds(value) and abs(value) > FLOAT32_MAX

    def accepts(self, value):
        if value is None:
            return self.allow_none
        return self._in_bounds(value) and not self._beyond_float32(value)

    def problem(self, value):
        if self._beyond_float32(value):
            return f"must be at most {FLOAT32_MAX:.3g} in magnitude, as training runs in float32"
        return super().problem(value)


class Options(Rule):
    def __init__(self, *options):
        self.options = options
        self.description = repr(options[0]) if len(options) == 1 else "one of " + ", ".join(repr(o) for o in options)

    def accepts(self, value):
        if isinstance(value, np.generic):  # numpy's str and bool, as from a parameter grid array
            value = value.item()
        # the type first: no comparison of arrays, pandas.NA or huge ints with a bool
        return any(type(value) is type(o) and value == o for o in self.options)


#: Widest layer a rule lets through; wider ones overflow torch's size
#: arguments or its allocator.
MAX_LAYER_WIDTH = 2**31 - 1
LAYER_WIDTH = Integer(low=1, high=MAX_LAYER_WIDTH)


class LayerSizes(Rule):
    description = (
        f"a tuple, list or 1-D integer array of ints from 1 to {MAX_LAYER_WIDTH} "
        "(an empty tuple for no hidden layer)"
    )

    def accepts(self, value):
        if isinstance(value, np.ndarray):
            # a row of a parameter grid or np.arange; a float array would
            # silently truncate widths, so only integer kinds pass
            if value.ndim != 1 or not np.issubdtype(value.dtype, np.integer):
                return False
        elif not isinstance(value, (tuple, list)):
            return False
        return all(LAYER_WIDTH.accepts(v) for v in value)


def layer_sizes(value):
    """Layer widths as one comparable, hashable value.

    Parameters
    ----------
    value : tuple, list, 1-D integer ndarray or other
        A value :class:`LayerSizes` accepts, or another parameter value
        (``"auto"``, an int).

    Returns
    -------
    tuple of int or object
        The widths as a tuple of Python ints; anything else as it is.
    """
    if isinstance(value, (tuple, list, np.ndarray)):
        return tuple(int(v) for v in value)
    return value


class AnyOf(Rule):
    def __init__(self, *rules):
        self.rules = rules
        self.description = " or ".join(r.description for r in rules)

    def accepts(self, value):
        return any(r.accepts(value) for r in self.rules)

    def problem(self, value):
        if self.accepts(value):
            return None
        # a rule whose kind the value has explains best (a float beyond float32)
        for rule in self.rules:
            if isinstance(rule, Real) and rule._beyond_float32(value):
                return rule.problem(value)
        return super().problem(value)


class CacheLocation(Rule):
    """What ``sklearn.utils.validation.check_memory`` takes, checked in
    ``fit`` even when no pretraining runs to use it."""

    description = "None, a directory path (str or os.PathLike) or an object with joblib.Memory's interface"

    def accepts(self, value):
        return value is None or isinstance(value, (str, os.PathLike)) or hasattr(value, "cache")


class RandomState(Rule):
    """What scikit-learn's ``check_random_state`` takes as a seed, checked
    when the estimator is fitted rather than when numpy first draws."""

    description = "None, an int in [0, 2**32 - 1] or a numpy.random.RandomState instance"

    def accepts(self, value):
        if value is None or isinstance(value, np.random.RandomState):
            return True
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            return False
        return 0 <= value <= 2**32 - 1

    def problem(self, value):
        problem = super().problem(value)
        if isinstance(value, np.random.Generator):
            problem += " (a numpy.random.Generator is not one: pass an int drawn from it, or a RandomState)"
        return problem


class Anything(Rule):
    description = "anything"

    def accepts(self, value):
        return True


def validate_params(estimator, names=None):
    """Run the rules of ``estimator._parameter_rules`` on its parameters:
    every rule, or those of ``names``."""
    params = estimator.get_params(deep=False)
    owner = type(estimator).__name__
    for name, rule in estimator._parameter_rules.items():
        if names is None or name in names:
            rule.check(owner, name, params[name])
