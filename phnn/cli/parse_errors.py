"""jsonargparse's parse errors as one line: the option, the value and what is expected.

jsonargparse reports a bad value as a page (usage, the Union subtypes it tried, nested "Parser key"
lines); `one_line` keeps what the user needs, e.g. `--model.optimizer.init_args.lr nan: expected a
finite number >= 0`.
"""

from __future__ import annotations

import re

#: what a numeric option accepts, by its last name (jsonargparse knows only its type)
OPTION_RANGES: dict[str, str] = {
    "lr": "a finite number >= 0 (e.g. 0.1 for SGD, 0.001 for Adam)",
    "weight_decay": "a finite number >= 0",
    "momentum": "a finite number >= 0 (0.9 is usual)",
    "eta_min": "a finite number >= 0",
    "algebra_l1": "a finite number >= 0",
    "label_smoothing": "a finite number in [0, 1)",
}
#: lines of jsonargparse's report that say how it searched, not what is wrong
_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value type:",
          "- Expected a <class 'NoneType'>", "Given value:")
_NESTED = re.compile(r"NestedArg\(key='([^']+)', val='([^']*)'\)")
_EXPECTED = re.compile(r"Expected a <class '(\w+)'>")


def _wanted(option: str, type_name: str) -> str:
    """What `option` accepts: its range when phnn knows it, else its type."""
    name = option.rsplit(".", 1)[-1]
    return OPTION_RANGES.get(name) or (f"a finite {type_name}" if type_name == "float" else f"a {type_name}")


def one_line(message: str) -> str:
    """The one-line form of a jsonargparse error message."""
    keys = re.findall(r'Parser key "([^"]+)"', message)
    nested = _NESTED.search(message)
    expected = _EXPECTED.search(message)
    if nested and keys and expected:  # a command-line option: --model.optimizer.init_args.lr nan
        option = f"--{keys[0]}.{nested.group(1)}"
        return f"{option} {nested.group(2)}: expected {_wanted(option, expected.group(1))}"
    if len(keys) > 1 and expected:  # a config file's value (model: init_args: optimizer: init_args: lr: nan)
        key = ".".join(keys)
        return f"{key}: not accepted: expected {_wanted(key, expected.group(1))}"
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    kept = [line for line in lines if not line.startswith(_NOISE)]
    return " ".join(kept or lines)
