"""Each L3DAS21 convention has one owner, `phnn/data/l3das21/layout.py`: no other module of the package
binds a name of that convention to its value (as a constant, a default or `sample_rate // 10`), and the
submission folder's name is written nowhere else."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from phnn.data.l3das21 import layout

PACKAGE = Path(layout.__file__).resolve().parents[2]
OWNER = Path(layout.__file__).resolve()
# convention → (names it goes by, its values, its name in layout); a binding of such a name to such a value
# outside layout.py is a copy
CONVENTIONS: dict[str, tuple[str, tuple[object, ...], str]] = {
    "label frame": (r"(?i)(frame|hop)_?seconds|frames_per_second|label_hop", (0.1, 10), "LABEL_FRAME_SECONDS"),
    "STFT frames per label frame": (r"(?i)stft_frames", (8,), "STFT_FRAMES_PER_LABEL_FRAME"),
    "classes": (r"(?i)classes", (14,), "NUM_CLASSES"),
    "slots": (r"(?i)slots", (3,), "MAX_SLOTS"),
}


def bindings(tree: ast.AST) -> list[tuple[str, object, int]]:
    """(name, constant value, line) of every assignment, annotated assignment and argument default."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [(t.id if isinstance(t, ast.Name) else getattr(t, "attr", ""), node.value.value, node.lineno)
                      for t in targets]
        elif isinstance(node, ast.arguments):
            positional = node.posonlyargs + node.args
            pairs = list(zip(positional[len(positional) - len(node.defaults):], node.defaults))
            pairs += [(a, d) for a, d in zip(node.kwonlyargs, node.kw_defaults) if d is not None]
            found += [(a.arg, d.value, d.lineno) for a, d in pairs if isinstance(d, ast.Constant)]
    return found


@functools.cache
def sources() -> dict[Path, ast.AST]:
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_each_convention_is_defined_once_in_layout(convention: str) -> None:
    pattern, values, owner_name = CONVENTIONS[convention]
    assert getattr(layout, owner_name) in values
    copies = [f"{path.relative_to(PACKAGE)}:{line} {name} = {value!r}"
              for path, tree in sources().items() if path != OWNER
              for name, value, line in bindings(tree)
              if re.search(pattern, name) and not isinstance(value, bool) and value in values]
    assert not copies, f"{convention} defined outside layout.py: {copies}"


def test_label_frame_is_never_derived_from_a_literal() -> None:
    """`sample_rate // 10` (or `* 0.1`) is the label frame again, written a second way."""
    copies = [f"{path.relative_to(PACKAGE)}:{node.lineno}"
              for path, tree in sources().items() for node in ast.walk(tree)
              if isinstance(node, ast.BinOp) and isinstance(node.right, ast.Constant) and node.right.value in (10, 0.1)
              and "sample_rate" in ast.unparse(node.left)]
    assert not copies


def test_the_submission_folder_is_named_once() -> None:
    places = [f"{path.relative_to(PACKAGE)}:{node.lineno}"
              for path, tree in sources().items() for node in ast.walk(tree)
              if isinstance(node, ast.Constant) and node.value == layout.SUBMISSION_FOLDER]
    assert places == [f"{OWNER.relative_to(PACKAGE)}:{_line_of('SUBMISSION_FOLDER')}"]


def _line_of(name: str) -> int:
    tree = ast.parse(OWNER.read_text())
    return next(node.lineno for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AnnAssign))
                and any(getattr(t, "id", None) == name for t in (node.targets if isinstance(node, ast.Assign)
                                                                  else [node.target])))
