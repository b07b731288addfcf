"""Parameter report of a model: per layer, its PH settings, its parameters and the dense equivalent.

The dense equivalent of a PH layer is the torch layer with the same shape, so the model total of the
"dense" column is exactly the parameter count of the real-family network of the same widths.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from torch import nn

from phnn.nn.layers import PHLayer


@dataclass(frozen=True)
class LayerRow:
    """One PH or dense layer in a parameter report: its parameters and those of the dense layer it replaces."""
    name: str
    type: str
    n: int | None
    algebra: str | None
    parameters: int
    dense_parameters: int

    @property
    def ratio(self) -> float:
        return self.parameters / self.dense_parameters if self.dense_parameters else 1.0


@dataclass(frozen=True)
class ParameterReport:
    """The parameter count of a network by layer, with totals against its dense counterpart."""
    rows: list[LayerRow]

    @property
    def total(self) -> int:
        return sum(row.parameters for row in self.rows)

    @property
    def dense_total(self) -> int:
        return sum(row.dense_parameters for row in self.rows)

    def to_dict(self) -> dict:
        return {
            "layers": [asdict(row) | {"ratio": row.ratio} for row in self.rows],
            "total": {"parameters": self.total, "dense_parameters": self.dense_total,
                      "ratio": self.total / self.dense_total if self.dense_total else 1.0},
        }

    def format_table(self) -> str:
        header = ("layer", "type", "n", "algebra", "params", "dense", "ratio")
        lines = [header] + [
            (row.name, row.type, "-" if row.n is None else str(row.n), row.algebra or "-",
             f"{row.parameters:,}", f"{row.dense_parameters:,}", f"{row.ratio:.3f}")
            for row in self.rows
        ]
        total_ratio = self.total / self.dense_total if self.dense_total else 1.0
        lines.append(("TOTAL", "", "", "", f"{self.total:,}", f"{self.dense_total:,}", f"{total_ratio:.3f}"))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        numeric = {4, 5, 6}

        def fmt(line: tuple[str, ...]) -> str:
            return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))

        rule = "  ".join("-" * w for w in widths)
        body = [fmt(line) for line in lines[1:-1]]
        return "\n".join([fmt(lines[0]), rule, *body, rule, fmt(lines[-1]),
                          f"real-family equivalent: {self.dense_total:,} parameters; "
                          f"this model has {total_ratio:.1%} of them"])


def parameter_report(model: nn.Module, trainable_only: bool = False) -> ParameterReport:
    """One row per module that owns parameters directly; a PH layer is one row with its dense twin.

    With `trainable_only`, frozen parameters (requires_grad False) are left out of both columns,
    except that a PH layer's dense twin is always counted whole.
    """

    def count(parameters: Iterable[nn.Parameter]) -> int:
        return sum(p.numel() for p in parameters if p.requires_grad or not trainable_only)

    rows = []
    for name, module in model.named_modules():
        if isinstance(module, PHLayer):
            params = count(module.parameters())
            rows.append(LayerRow(name, type(module).__name__, module.n, module.algebra_name, params,
                                 module.dense_parameter_count()))
            continue
        own = count(module.parameters(recurse=False))
        if own:
            rows.append(LayerRow(name or "(root)", type(module).__name__, None, None, own, own))
    return ParameterReport(rows)
