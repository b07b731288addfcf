"""PHRNN/PHGRU/PHLSTM and PHMultiheadAttention: exactly torch's layers on their composed weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from phnn.nn import (
    PHGRU,
    PHLSTM,
    PHRNN,
    PHLayer,
    PHMLinear,
    PHMultiheadAttention,
    convert,
    parameter_report,
    to_dense,
)
from phnn.nn.composition import compose

RECURRENT = [
    pytest.param(PHGRU, {}, id="gru"),
    pytest.param(PHLSTM, {}, id="lstm"),
    pytest.param(PHLSTM, {"proj_size": 4}, id="lstm-proj"),
    pytest.param(PHRNN, {"nonlinearity": "relu"}, id="rnn-relu"),
]
LENGTHS = torch.tensor([5, 2, 4])


def recurrent(cls: type, extra: dict, **settings) -> nn.Module:
    torch.manual_seed(0)
    return cls(8, 12, **{"num_layers": 2, "bidirectional": True, "batch_first": True, **extra, **settings})


def outputs(result: tuple) -> list[torch.Tensor]:
    """All tensors of an RNN result (output, h) / (output, (h, c)), packed data unpacked."""
    output, state = result
    output = output.data if isinstance(output, nn.utils.rnn.PackedSequence) else output
    return [output, *(state if isinstance(state, tuple) else (state,))]


@pytest.mark.parametrize(("cls", "extra"), RECURRENT)
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_kronecker_weights_give_the_torch_layer_forward_and_gradients(cls: type, extra: dict, packed: bool) -> None:
    """A torch layer whose weights are exact Kronecker sums converts (init="nearest") to a PH layer with the
    same outputs and states (two layers, both directions, packed input) and the same gradients."""
    dense = recurrent(cls, extra).to_dense()
    report = convert(dense, n=4, init="nearest")
    ph = report.model
    assert type(ph) is cls and report.errors[""] < 1e-5
    x = torch.randn(3, 5, 8)
    x_dense, x_ph = x.clone().requires_grad_(), x.clone().requires_grad_()

    def run(module: nn.Module, data: torch.Tensor) -> list[torch.Tensor]:
        source = pack_padded_sequence(data, LENGTHS, batch_first=True, enforce_sorted=False) if packed else data
        return outputs(module(source))

    expected, actual = run(dense, x_dense), run(ph, x_ph)
    for want, got in zip(expected, actual):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    weights = [torch.randn_like(t) for t in expected]
    sum((w * t).sum() for w, t in zip(weights, expected)).backward()
    sum((w * t).sum() for w, t in zip(weights, actual)).backward()
    torch.testing.assert_close(x_ph.grad, x_dense.grad, rtol=0, atol=1e-5)
    for layer, weight, bias in ph.dense_pairs():
        # the factors' gradient is the dense weight's gradient pulled back through the composition
        factors = layer.factors.detach().requires_grad_()
        (pulled,) = torch.autograd.grad(compose(layer.algebra.detach(), factors), factors,
                                        grad_outputs=dense.get_parameter(weight).grad)
        torch.testing.assert_close(layer.factors.grad, pulled, rtol=1e-4, atol=1e-5)
        if bias is not None:
            torch.testing.assert_close(layer.bias.grad, dense.get_parameter(bias).grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("cls", "extra"), RECURRENT)
def test_to_dense_unbatched_and_initial_state(cls: type, extra: dict) -> None:
    ph = recurrent(cls, extra, batch_first=False)
    dense = ph.to_dense()
    assert type(dense) is {PHGRU: nn.GRU, PHLSTM: nn.LSTM, PHRNN: nn.RNN}[cls]
    x = torch.randn(5, 8)
    for want, got in zip(outputs(dense(x)), outputs(ph(x))):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    batch = torch.randn(5, 3, 8)
    _, state = dense(batch)
    state = tuple(torch.randn_like(s) for s in state) if isinstance(state, tuple) else torch.randn_like(state)
    for want, got in zip(outputs(dense(batch, state)), outputs(ph(batch, state))):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("cls", "extra", "gates"), [(PHGRU, {}, 3), (PHLSTM, {"proj_size": 4}, 4), (PHRNN, {}, 1)])
def test_parameter_count_formula_and_gate_layout(cls: type, extra: dict, gates: int) -> None:
    ph = recurrent(cls, extra)
    n, hidden, state = 4, 12, extra.get("proj_size", 12)
    expected = 0
    for width in (8, 8, 2 * state, 2 * state):  # layer 0 both directions, then layer 1
        expected += 2 * n**3 + gates * hidden * (width + state) // n + 2 * gates * hidden
        expected += (n**3 + state * hidden // n) if "proj_size" in extra else 0
    assert sum(p.numel() for p in ph.parameters()) == expected
    assert ph.dense_parameter_count() == sum(p.numel() for p in ph.to_dense().parameters())
    # each gate block is a Kronecker sum of its own: blocks laid out as torch's gates, one below the other
    layer = ph.ih_l0
    assert layer.factors.shape == (n, gates, hidden // n, 8 // n)
    for gate in range(gates):
        block = layer.weight[gate * hidden:(gate + 1) * hidden]
        reference = sum(torch.kron(layer.algebra[i], layer.factors[i, gate]) for i in range(n))
        torch.testing.assert_close(block, reference)


def test_packed_weights_for_cudnn_feed_the_kernel_and_carry_gradients() -> None:
    from phnn.nn.recurrent import pack_contiguous

    ph = recurrent(PHGRU, {})
    weights = ph.flat_weights()
    packed = pack_contiguous(weights)
    assert all(p.data_ptr() == packed[0].data_ptr() + 4 * sum(w.numel() for w in weights[:i])
               for i, p in enumerate(packed))
    x = torch.randn(3, 5, 8)
    settings = (True, 2, 0.0, True, True, True)
    out = torch._VF.gru(x, torch.zeros(4, 3, 12), packed, *settings)[0]
    torch.testing.assert_close(out, ph(x)[0])
    out.sum().backward()
    assert all(p.grad is not None for p in ph.parameters())


def test_init_matches_torch_variance() -> None:
    torch.manual_seed(0)
    ph, dense = PHGRU(64, 64, n=4), nn.GRU(64, 64)
    with torch.no_grad():
        ratio = torch.cat([w.flatten() for w in ph.flat_weights()]).var() / torch.cat(
            [w.flatten() for w in dense.parameters()]).var()
    assert 0.8 < float(ratio) < 1.25


def test_sizes_not_divisible_by_n_are_named() -> None:
    with pytest.raises(ValueError) as info:
        PHGRU(10, 12, n=4)
    message = str(info.value)
    assert "PHGRU(input_size=10, hidden_size=12, n=4)" in message and "input_size=10" in message and "12" in message
    with pytest.raises(ValueError, match="proj_size=6"):
        PHLSTM(8, 12, proj_size=6, n=4)
    with pytest.raises(ValueError, match="embed_dim"):
        PHMultiheadAttention(10, 2, n=4)


def test_deepcopy_state_dict_and_eval_cache_follow_training() -> None:
    ph = recurrent(PHGRU, {}).eval()
    x = torch.randn(3, 5, 8)
    with torch.no_grad():
        before = ph(x)[0]
    clone = copy.deepcopy(ph)
    torch.testing.assert_close(clone(x)[0], before)
    fresh = PHGRU(8, 12, num_layers=2, bidirectional=True, batch_first=True)
    fresh.load_state_dict(ph.state_dict())
    torch.testing.assert_close(fresh.eval()(x)[0], before)
    optimizer = torch.optim.SGD(ph.parameters(), lr=0.5)
    ph.train()(x)[0].sum().backward()
    optimizer.step()
    with torch.no_grad():
        assert not torch.allclose(ph.eval()(x)[0], before), "the eval cache must see the optimizer step"


def test_autocast_keeps_the_weights_in_their_dtype_like_torch() -> None:
    ph = recurrent(PHLSTM, {})
    dense = ph.to_dense()
    x = torch.randn(3, 5, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = ph(x)[0], dense(x)[0]
    assert got.dtype == want.dtype
    torch.testing.assert_close(got.float(), want.float(), rtol=0.02, atol=0.02)


@pytest.mark.parametrize("cls", [pytest.param(PHGRU, marks=pytest.mark.slow), PHMultiheadAttention])
def test_compile_fullgraph_captures_without_graph_breaks(cls: type) -> None:
    module = recurrent(PHGRU, {}) if cls is PHGRU else PHMultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(3, 5, 8)
    run = (lambda m: m(x)[0]) if cls is PHGRU else (lambda m: m(x, x, x, need_weights=False)[0])
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    torch.testing.assert_close(run(compiled), run(module))
    run(compiled).sum().backward()
    assert all(p.grad is not None for p in module.parameters())


# --- attention --------------------------------------------------------------------------------------

ATTENTION = [
    pytest.param({}, id="packed-qkv"),
    pytest.param({"kdim": 8, "vdim": 12}, id="kdim-vdim"),
    pytest.param({"add_bias_kv": True, "add_zero_attn": True}, id="bias-kv-zero-attn"),
    pytest.param({"bias": False, "batch_first": False}, id="no-bias-seq-first"),
]


@pytest.mark.parametrize("settings", ATTENTION)
def test_attention_is_torch_attention_on_the_composed_weights(settings: dict) -> None:
    torch.manual_seed(0)
    ph = PHMultiheadAttention(16, 4, **{"batch_first": True, **settings})
    dense = convert(ph.to_dense(), n=4, init="nearest").model.to_dense()  # a round trip through convert
    assert sum(p.numel() for p in ph.parameters()) < sum(p.numel() for p in dense.parameters())
    seq_first = not ph.batch_first
    shape = (lambda length, width: (length, 2, width)) if seq_first else (lambda length, width: (2, length, width))
    q, k, v = torch.randn(shape(5, 16)), torch.randn(shape(7, ph.kdim)), torch.randn(shape(7, ph.vdim))
    padding = torch.tensor([[False] * 7, [False] * 5 + [True] * 2])
    for kwargs in ({"key_padding_mask": padding}, {"average_attn_weights": False},
                   {"attn_mask": torch.randn(5, 7), "need_weights": False}):
        want, got = dense(q, k, v, **kwargs), ph(q, k, v, **kwargs)
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-5)
        if want[1] is not None:
            torch.testing.assert_close(got[1], want[1], rtol=0, atol=1e-6)


def test_attention_causal_mask_in_eval_and_projection_weights() -> None:
    torch.manual_seed(0)
    ph = PHMultiheadAttention(16, 4, batch_first=True).eval()
    dense = ph.to_dense().eval()
    x = torch.randn(2, 6, 16)
    causal = nn.Transformer.generate_square_subsequent_mask(6)
    with torch.no_grad():
        want = dense(x, x, x, attn_mask=causal, is_causal=True, need_weights=False)[0]
        got = ph(x, x, x, attn_mask=causal, is_causal=True, need_weights=False)[0]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(ph.in_proj_weight, dense.in_proj_weight)
    assert ph.q_proj_weight is None and ph.in_proj.factors.shape == (4, 3, 4, 4)


# --- convert / to_dense on whole models --------------------------------------------------------------

def weight_holders(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None]


def assert_nothing_hidden(model: nn.Module, report) -> None:
    listed = [*report.converted, *report.skipped, *report.kept]
    for name in weight_holders(model):
        assert any(name == unit or name.startswith(unit + ".") or unit == "" for unit in listed), name


def test_convert_a_transformer_lists_every_weight_holding_module() -> None:
    torch.manual_seed(0)
    model = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32,
                           dropout=0.0, batch_first=True)
    report = convert(model, n=4)
    assert_nothing_hidden(model, report)
    converted = report.model
    layer = converted.encoder.layers[0]
    assert isinstance(layer.self_attn, PHMultiheadAttention) and isinstance(layer.linear1, PHMLinear)
    assert isinstance(converted.decoder.layers[0].multihead_attn, PHMultiheadAttention)
    assert all("normalisation" in reason for reason in report.kept.values()) and not report.skipped
    assert len(report.converted) == 3 + 4  # 3 attentions, 2 feed-forward blocks of 2 linears
    before, after = report.parameters_by_type["MultiheadAttention"]
    assert after < before / 2 and report.parameters_by_type["LayerNorm"][0] == report.parameters_by_type["LayerNorm"][1]
    assert sum(b for b, _ in report.parameters_by_type.values()) == report.parameters_before
    assert sum(a for _, a in report.parameters_by_type.values()) == report.parameters_after
    assert "kept" in str(report) and "parameters by module type" in str(report)
    src, tgt = torch.randn(2, 7, 16), torch.randn(2, 5, 16)
    converted.eval()
    with torch.no_grad():
        out = converted(src, tgt)
        torch.testing.assert_close(to_dense(converted).eval()(src, tgt), out, rtol=0, atol=1e-5)


def test_convert_an_lstm_model_and_back() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(20, 8), nn.LSTM(8, 12, num_layers=2, batch_first=True), nn.GRU(12, 6))
    report = convert(model, n=4)
    assert_nothing_hidden(model, report)
    assert report.converted == ["1"] and "lookup table" in report.kept["0"]
    again = convert(report.model, n=4)
    assert again.converted == [] and again.kept["1"] == "already a PH layer"
    assert "hidden_size=6 must be divisible by n=4" in report.skipped["2"]
    assert isinstance(report.model[1], PHLSTM)
    dense = to_dense(report.model)
    assert type(dense[1]) is nn.LSTM and not any(isinstance(m, PHLayer) for m in dense.modules())
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(dense[1](x)[0], report.model[1](x)[0], rtol=0, atol=1e-6)


def test_reports_and_plots_find_the_algebras_of_recurrent_layers() -> None:
    model = nn.Sequential(PHGRU(8, 8, n=2), PHMultiheadAttention(8, 2, n=2))
    rows = {row.name: row for row in parameter_report(model).rows}
    assert {"0.ih_l0", "0.hh_l0", "1.in_proj", "1.out_proj"} <= set(rows)
    assert rows["0.ih_l0"].dense_parameters == 3 * 8 * 8 + 3 * 8
    assert parameter_report(model).dense_total == sum(p.numel() for p in to_dense(model).parameters())
    from phnn.tools.algebra_plot import algebra_figure

    plotted = [name for name, m in model.named_modules() if isinstance(m, PHLayer)]  # what `phnn inspect` plots
    assert plotted == ["0.ih_l0", "0.hh_l0", "1.in_proj", "1.out_proj"]
    assert "learned algebra, n=2" in algebra_figure(model[0].hh_l0, "0.hh_l0")._suptitle.get_text()


class _Tagger(nn.Module):
    """A tiny sequence model: GRU then attention then a linear read-out (batch, time, features) -> logits."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = PHGRU(8, 8, batch_first=True, bidirectional=True, n=4)
        self.attention = PHMultiheadAttention(16, 2, batch_first=True, n=4)
        self.out = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.gru(x)[0]
        return self.out(self.attention(h, h, h, need_weights=False)[0])


def test_export_goes_through_to_dense(tmp_path) -> None:
    from phnn.tools.export import export_model

    torch.manual_seed(0)
    result = export_model(_Tagger(), torch.randn(2, 5, 8), "torchscript", tmp_path / "model.pt", {})
    assert result.max_abs_diff < 1e-5


@pytest.mark.parametrize("need_weights", [False, True])
def test_attention_in_eval_runs_torch_fused_kernel_like_the_dense_layer(need_weights: bool,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """nn.MultiheadAttention runs a fused kernel for self-attention in eval; the PH layer takes the same path
    (else it is slower than the layer it replaces) and gives the same outputs."""
    torch.manual_seed(0)
    ph = PHMultiheadAttention(16, 4, batch_first=True).eval()
    dense = ph.to_dense().eval()
    calls: list[str] = []
    fused = torch._native_multi_head_attention
    monkeypatch.setattr(torch, "_native_multi_head_attention", lambda *args: calls.append("fused") or fused(*args))
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        want, got = dense(x, x, x, need_weights=need_weights), ph(x, x, x, need_weights=need_weights)
    assert calls == ["fused", "fused"]
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-5)
    if need_weights:
        torch.testing.assert_close(got[1], want[1], rtol=0, atol=1e-6)
    ph.train()
    ph(x, x, x)
    assert calls == ["fused", "fused"], "training takes the general path"
