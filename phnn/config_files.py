"""Config files: found by path or by the name of a config shipped with phnn, and read with bounds.

    phnn fit -c sed/demo.yaml        # phnn/configs/sed/demo.yaml (an existing path always wins)
    phnn fit -c my/experiment.yaml   # a file of yours

A config is untrusted input: before jsonargparse reads it, `check_config_file` refuses a file
larger than `MAX_BYTES`, nested deeper than `MAX_DEPTH` or holding more than `MAX_NODES` values
once its aliases are expanded (nine lines of nested aliases, "billion laughs", would otherwise
grow to gigabytes in the parser). A config named inside a config (a string value that is the
path of a .yaml/.yml/.json file, which jsonargparse reads as a config) is checked the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path

import yaml

from phnn.errors import ConfigFileError

#: the configs shipped with the package (`phnn fit -c sed/demo.yaml` finds sed/demo.yaml here)
SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"
#: the options whose value is a config file (jsonargparse's `--config`, its short form, `--config=...`)
CONFIG_FLAGS = ("--config", "-c")
#: the largest config file read, in bytes
MAX_BYTES = 1_000_000
#: the most values (mappings, lists, scalars) in one config, counted with its aliases expanded
MAX_NODES = 100_000
#: the deepest nesting of mappings and lists in one config
MAX_DEPTH = 64
#: suffixes of the files jsonargparse reads as configs when a config value names one
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def shipped_config_names() -> list[str]:
    """Every config shipped with phnn, by the name `--config` accepts (e.g. 'sed/demo.yaml')."""
    return sorted(str(p.relative_to(SHIPPED_CONFIGS)) for p in SHIPPED_CONFIGS.rglob("*")
                  if p.suffix in CONFIG_SUFFIXES and p.is_file())


def find_config(value: str) -> Path:
    """The config file `value` names: an existing path, else a config shipped with phnn by name."""
    given = Path(value).expanduser()
    if given.exists():
        return given
    shipped = (SHIPPED_CONFIGS / value).resolve()
    if shipped.is_relative_to(SHIPPED_CONFIGS) and shipped.is_file():
        return shipped
    close = difflib.get_close_matches(value, shipped_config_names(), n=3, cutoff=0.75)
    folders = ", ".join(sorted(p.name + "/" for p in SHIPPED_CONFIGS.iterdir() if p.is_dir()))
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; shipped configs are under {folders}"
    raise ConfigFileError(f"--config {value}: no such file: looked for {given.absolute()} and for {shipped} "
                          f"(the configs shipped with phnn){hint}")


def _expanded_nodes(root: yaml.Node, path: Path) -> Iterator[yaml.Node]:
    """Every node under `root`, an alias's target once per alias (as a parser would expand it),
    refusing more than `MAX_NODES` of them or a nesting deeper than `MAX_DEPTH`."""
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigFileError(f"{path}: more than {MAX_NODES:,} values once its aliases (*name) are expanded; "
                                  "a config never needs that many: write the values out, or fewer aliases")
        if depth > MAX_DEPTH:
            raise ConfigFileError(f"{path}: nested deeper than {MAX_DEPTH} levels; a config never needs that")
        yield node
        if isinstance(node, yaml.MappingNode):
            stack.extend((part, depth + 1) for pair in node.value for part in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def check_config_text(text: str, path: Path) -> list[str]:
    """Check a config's text against the bounds (see the module doc); returns its string values."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise ConfigFileError(f"{path}: nested deeper than {MAX_DEPTH} levels; a config never needs that") from None
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())
        raise ConfigFileError(f"{path}: not valid YAML ({reason})") from None
    if root is None:
        return []
    return [node.value for node in _expanded_nodes(root, path)
            if isinstance(node, yaml.ScalarNode) and isinstance(node.value, str)]


def check_config_file(path: Path, seen: set[Path] | None = None) -> None:
    """Refuse the config at `path` (and any config it names) when it exceeds a bound; reads at most
    `MAX_BYTES` + 1 bytes of it."""
    seen = set() if seen is None else seen
    key = path.resolve()
    if key in seen or not path.is_file():
        return  # a folder or a missing file: jsonargparse reports it
    seen.add(key)
    with path.open("rb") as file:
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ConfigFileError(f"{path}: larger than {MAX_BYTES:,} bytes; a config is a few kilobytes: is it the "
                              "right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigFileError(f"{path}: not a text file ({error.reason} at byte {error.start}); give a YAML "
                              "config") from None
    for value in check_config_text(text, path):
        for named in _named_configs(value, path.parent):
            check_config_file(named, seen)


def _named_configs(value: str, folder: Path) -> list[Path]:
    """The config files a string value of a config may name (relative to the config's folder or here)."""
    if len(value) > 4096 or "\n" in value or not value.endswith(CONFIG_SUFFIXES):
        return []
    try:
        return [candidate for candidate in (Path(value), folder / value) if candidate.is_file()]
    except (OSError, ValueError):
        return []


def _config_value_slots(argv: list[str]) -> Iterator[tuple[int, str, str]]:
    """(index, prefix, value) of every config file value in `argv`: `--config V`, `-c V`, `--config=V`."""
    for index, arg in enumerate(argv):
        if arg in CONFIG_FLAGS and index + 1 < len(argv):
            yield index + 1, "", argv[index + 1]
        elif arg.startswith("--config="):
            yield index, "--config=", arg.split("=", 1)[1]


def resolve_config_args(argv: list[str]) -> list[str]:
    """`argv` with every config file found (`find_config`: a shipped name becomes its path) and checked
    (`check_config_file`), as is every other argument naming an existing .yaml/.yml/.json file (a
    class group given as a file, e.g. `--model model.yaml`). Inline YAML given to --config is
    checked as text. Raises `ConfigFileError` naming the file."""
    result = list(argv)
    seen: set[Path] = set()
    for index, prefix, value in _config_value_slots(argv):
        if "\n" in value or value.lstrip().startswith(("{", "[")):
            for named in check_config_text(value, Path("--config")):
                for path in _named_configs(named, Path.cwd()):
                    check_config_file(path, seen)
            continue
        path = find_config(value)
        check_config_file(path, seen)
        if not Path(value).expanduser().exists():
            result[index] = prefix + str(path)
    for arg in argv:
        for path in _named_configs(arg.split("=", 1)[-1], Path.cwd()):
            check_config_file(path, seen)
    return result
