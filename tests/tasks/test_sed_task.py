"""SoundEventDetector: training step, metric logging, windowed whole-clip prediction."""

from __future__ import annotations

import dataclasses

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from phnn.data.l3das21 import predict_collate
from phnn.metrics import L3DAS21FrameScore
from phnn.models.sednet import SEDnetConfig
from phnn.tasks.doa import DOAHead
from phnn.tasks.sed import SoundEventDetector

TINY = SEDnetConfig(family="phc", n=4, widths=(4, 4, 8, 8), gru_hidden=8, gru_layers=1, fc_width=16, fc_layers=1,
                    dropout=0.0)


def tiny_task(network: dict | None = None, doa: DOAHead | None = None, **kwargs) -> SoundEventDetector:
    """A tiny SED task; `network` overrides fields of TINY, `doa` makes it SELD."""
    return SoundEventDetector(num_classes=14, in_channels=4, model=dataclasses.replace(TINY, **(network or {})),
                              doa=doa, **kwargs)


def batch(size: int = 2, frames: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(size, 4, 256, 8 * frames), (torch.rand(size, frames, 42) > 0.9).float()


def test_training_step_loss_and_gradients() -> None:
    task = tiny_task(algebra_l1=0.001)
    loss = task.training_step(batch(), 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in task.parameters())


def test_monitor_is_f_score_max() -> None:
    assert (SoundEventDetector.monitor, SoundEventDetector.monitor_mode) == ("val/f_score", "max")


def clip(frames: int = 20, seed: int = 0) -> dict:
    """A whole-clip evaluation item as the DataModule gives it (a tensor in place of the lazy features)."""
    generator = torch.Generator().manual_seed(seed)
    return {"stem": f"c{seed}", "features": torch.randn(4, 256, 8 * frames, generator=generator),
            "sed": (torch.rand(frames, 42, generator=generator) > 0.9).float(), "num_frames": frames,
            "duration": frames / 10, "events": [(0.2, 1.0, 3), (0.5, 1.9, 7)], "label_grid": "official"}


def test_fit_and_test_log_the_published_metrics(tmp_path) -> None:
    train = DataLoader(TensorDataset(*batch(4)), batch_size=2)
    clips = DataLoader([clip(seed=0), clip(seed=1)], batch_size=1, collate_fn=predict_collate)
    task = tiny_task(optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), predict_window_frames=8,
                     predict_overlap_frames=2)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, train, clips)
    assert {"train/loss_epoch", "val/loss", "val/f_score", "val/f_score_l3das21", "val/error_rate"} <= set(
        trainer.callback_metrics)
    (results,) = trainer.test(task, clips, verbose=False)
    names = {f"test/{name}" for name in ("f_score", "precision", "recall", "f_score_l3das21", "precision_l3das21",
                                         "recall_l3das21", "error_rate", "segment_f1", "event_f1", "event_error_rate",
                                         "loss")}
    assert names <= set(results)
    assert 0.0 <= results["test/f_score"] <= 1.0


def test_evaluation_scores_clips_exactly_as_prediction() -> None:
    task = tiny_task(predict_window_frames=6, predict_overlap_frames=2, threshold=0.3).eval()
    item = clip(23, seed=4)
    predicted = task.predict_clip(item)
    task.evaluate_clip(item, "test")
    frame = L3DAS21FrameScore(14, counting="official")
    frame.update(predicted["detections"][None], item["sed"][None])
    assert task.test_frame["official"].compute() == frame.compute()


def test_mismatched_targets_are_refused() -> None:
    features, targets = batch()
    with pytest.raises(ValueError, match="does not match targets"):
        tiny_task().training_step((features, targets[:, :5]), 0)


@pytest.mark.parametrize(("window", "overlap"), [(4, 0), (4, 2), (3, 1)])
def test_windowed_scores_cover_the_clip(window: int, overlap: int) -> None:
    task = tiny_task(predict_window_frames=window, predict_overlap_frames=overlap).eval()
    features = torch.randn(4, 256, 8 * 11 - 3)  # 11 label frames, last one partial
    scores = task.clip_scores(features)
    assert scores.shape == (11, 42)
    assert ((scores > 0) & (scores < 1)).all()


def test_one_window_equals_the_full_network() -> None:
    task = tiny_task(predict_window_frames=600).eval()
    features = torch.randn(4, 256, 80)
    with torch.no_grad():
        expected = torch.sigmoid(task(features[None]))[0]
    torch.testing.assert_close(task.clip_scores(features), expected)


def test_predict_step_returns_one_dict_per_clip() -> None:
    task = tiny_task(threshold=0.5).eval()
    good = {"stem": "a", "paths": ["/x/a_A.wav", "/x/a_B.wav"], "features": torch.randn(4, 256, 80), "duration": 1.0}
    broken = {"stem": "b", "path": "/x/b_A.wav", "error": "cannot read"}
    wrong = {"stem": "c", "path": "/x/c_A.wav", "features": torch.randn(8, 256, 80)}
    out = task.predict_step([good, broken, wrong], 0)
    assert out[0]["error"] is None and out[0]["scores"].shape == (10, 42) and out[0]["duration"] == 1.0
    assert torch.equal(out[0]["detections"], out[0]["scores"] > 0.5)
    assert out[0]["path"] == "/x/a_A.wav" and out[0]["paths"] == ["/x/a_A.wav", "/x/a_B.wav"]
    assert out[1] == {"stem": "b", "path": "/x/b_A.wav", "paths": ["/x/b_A.wav"], "error": "cannot read"}
    assert "4 channels" in out[2]["error"] and "(8, 256, 80)" in out[2]["error"]


@pytest.mark.parametrize("kwargs", [{"threshold": 1.0}, {"predict_window_frames": 4, "predict_overlap_frames": 4}])
def test_bad_options(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="SoundEventDetector"):
        tiny_task(**kwargs)


@pytest.mark.parametrize(("kwargs", "field"), [({"loss": "l1"}, "doa.loss"), ({"smoothing": "mean"}, "doa.smoothing"),
                                               ({"loss_weight": -1.0}, "loss_weight=-1.0")])
def test_bad_doa_settings_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DOAHead(**kwargs)


# --- localisation (SELD) -------------------------------------------------------------------------

def seld_batch(size: int = 2, frames: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    features, sed = batch(size, frames)
    doa = (torch.rand(size, frames, 126) * 2 - 1) * sed.repeat(1, 1, 3)  # zero where the slot is inactive
    return features, sed, doa


def test_seld_loss_is_weighted_bce_plus_mse_and_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    task = tiny_task(doa=DOAHead(sed_loss_weight=0.5, loss_weight=3.0))
    features, sed, doa = seld_batch()
    loss = task.training_step((features, sed, doa), 0)
    logits, predicted = task.split_outputs(task(features))
    expected = 0.5 * torch.nn.functional.binary_cross_entropy_with_logits(logits, sed) + \
        3.0 * torch.nn.functional.mse_loss(predicted, doa)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is not None for p in task.parameters())
    assert task.monitor == "val/seld_f_score" and SoundEventDetector.monitor == "val/f_score"


def test_masked_doa_loss_averages_over_active_slots_only() -> None:
    task = tiny_task(doa=DOAHead(loss_mask=True))
    sed = torch.zeros(1, 2, 42)
    sed[0, 1, 5] = 1.0
    target = torch.zeros(1, 2, 126)
    output = torch.full((1, 2, 126), 0.5)
    target[0, 1, [5, 47, 89]] = torch.tensor([0.1, -0.2, 0.3])  # x, y, z of slot 5
    expected = ((0.5 - 0.1) ** 2 + (0.5 + 0.2) ** 2 + (0.5 - 0.3) ** 2) / 3
    torch.testing.assert_close(task.doa.loss_of(output, target, sed), torch.tensor(expected))


def test_distance_doa_loss_averages_euclidean_errors_over_active_slots() -> None:
    """doa_loss: distance trains on what the localisation error averages: metres (/ 2) per active slot."""
    sed = torch.zeros(1, 2, 42)
    sed[0, 0, 5] = sed[0, 1, 7] = 1.0
    target, output = torch.zeros(1, 2, 126), torch.zeros(1, 2, 126)
    output[0, 0, [5, 47]] = torch.tensor([0.3, 0.4])  # slot 5 off by (0.3, 0.4, 0): 0.5
    output[0, 1, [7 + 84]] = 0.2  # slot 7 off by 0.2 in z
    output[0, 1, 8] = 0.9  # an inactive slot: ignored with the mask
    masked = tiny_task(doa=DOAHead(loss="distance", loss_mask=True))
    torch.testing.assert_close(masked.doa.loss_of(output, target, sed), torch.tensor((0.5 + 0.2) / 2), atol=1e-6,
                               rtol=0)
    every_slot = tiny_task(doa=DOAHead(loss="distance"))
    torch.testing.assert_close(every_slot.doa.loss_of(output, target, sed), torch.tensor((0.5 + 0.2 + 0.9) / 84),
                               atol=1e-6, rtol=0)


def test_evaluation_bce_is_the_torch_bce_in_float32() -> None:
    """Written out because F.binary_cross_entropy refuses CUDA autocast (trainer configs gpu.yaml, gpu_bf16.yaml)."""
    from phnn.tasks.sed import probability_bce

    scores, targets = torch.rand(30, 42), (torch.rand(30, 42) > 0.8).float()
    scores[0, 0], scores[0, 1] = 0.0, 1.0  # clamped as before
    expected = torch.nn.functional.binary_cross_entropy(scores.clamp(1e-7, 1 - 1e-7), targets)
    torch.testing.assert_close(probability_bce(scores, targets), expected)
    assert probability_bce(scores.bfloat16(), targets.bfloat16()).dtype == torch.float32


def test_doa_branch_options_reach_the_network() -> None:
    task = tiny_task({"doa_shared_blocks": 0, "doa_widths": (8, 4, 8, 8), "doa_pooling": "avg"}, DOAHead())
    assert [block[0].out_channels for block in task.model.doa_conv] == [8, 4, 8, 8]
    features, sed, doa = seld_batch()
    task.training_step((features, sed, doa), 0).backward()
    assert all(p.grad is not None for p in task.model.doa_gru.parameters())


def test_seld_batches_without_doa_targets_are_refused() -> None:
    features, sed = batch()
    with pytest.raises(ValueError, match="return_doa"):
        tiny_task(doa=DOAHead()).training_step((features, sed), 0)


def seld_clip(frames: int = 20, seed: int = 0) -> dict:
    item = clip(frames, seed)
    return {**item, "doa": (torch.rand(frames, 126) * 2 - 1) * item["sed"].repeat(1, 3)}


def test_seld_fit_and_test_log_the_seld_metrics(tmp_path) -> None:
    train = DataLoader(TensorDataset(*seld_batch(4)), batch_size=2)
    clips = DataLoader([seld_clip(seed=0), seld_clip(seed=1)], batch_size=1, collate_fn=predict_collate)
    task = tiny_task(doa=DOAHead(), threshold=0.3, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, train, clips)
    assert {"train/sed_loss_epoch", "train/doa_loss_epoch", "val/seld_f_score"} <= set(trainer.callback_metrics)
    (results,) = trainer.test(task, clips, verbose=False)
    expected = {"test/f_score", "test/seld_f_score", "test/seld_f_score_l3das21", "test/doa_error_m",
                "test/doa_error_deg", "test/dcase_error_rate_20", "test/dcase_f_score_20",
                "test/dcase_localisation_error", "test/dcase_localisation_recall", "test/loss"}
    assert expected <= set(results)


@pytest.mark.parametrize("smoothing", ["none", "event_median"])
def test_seld_evaluation_scores_positions_exactly_as_prediction(smoothing: str) -> None:
    """The located metrics of `phnn test` use the detections and positions that `phnn predict` writes."""
    from phnn.metrics.seld import SELDScores

    task = tiny_task({"output_prior": 0.5}, DOAHead(smoothing=smoothing), predict_window_frames=6,
                     predict_overlap_frames=2).eval()
    item = seld_clip(23, seed=4)
    predicted = task.predict_clip(item)
    task.evaluate_clip(item, "test")
    reference = SELDScores(14)
    reference.update(predicted["detections"][None], item["sed"][None], predicted["positions"][None],
                     task.doa.positions(item["doa"])[None])
    logged = task.test_seld.compute()
    assert logged == reference.compute() and float(logged["seld_f_score"]) > 0 and float(logged["doa_error_m"]) > 0
    with pytest.raises(ValueError, match="return_doa"):
        task.evaluate_clip(clip(23, seed=4), "test")


def test_clip_outputs_hold_scores_and_positions_through_one_stitching_path() -> None:
    task = tiny_task(doa=DOAHead(), predict_window_frames=600).eval()
    features = torch.randn(4, 256, 80)
    outputs = task.clip_scores(features)
    assert outputs.shape == (10, 168)
    with torch.no_grad():
        raw = task(features[None])[0]
    torch.testing.assert_close(outputs[:, :42], torch.sigmoid(raw[:, :42]))
    torch.testing.assert_close(outputs[:, 42:], raw[:, 42:])
    windowed = tiny_task(doa=DOAHead(), predict_window_frames=4, predict_overlap_frames=2).eval()
    assert windowed.clip_scores(features).shape == (10, 168)
    (item,) = task.predict_step({"stem": "a", "paths": ["a_A.wav"], "features": features, "duration": 1.0}, 0)
    assert item["scores"].shape == (10, 42) and item["positions"].shape == (10, 42, 3)
    # positions in metres: the DOA output column of slot 7's y is 42 + 42 + 7, times 2 m
    torch.testing.assert_close(item["positions"][:, 7, 1], 2.0 * raw[:, 42 + 42 + 7])


def test_event_median_positions_give_each_detected_run_its_median() -> None:
    from phnn.tasks.doa import event_median_positions

    detections = torch.tensor([[1, 0], [1, 1], [1, 1], [0, 1], [1, 0]]).bool()
    positions = torch.arange(30.0).reshape(5, 2, 3)
    positions[1, 0] = 100.0  # an outlier frame inside slot 0's first run
    smoothed = event_median_positions(detections, positions)
    torch.testing.assert_close(smoothed[:3, 0], positions[2, 0].expand(3, 3))  # run 0-2 of slot 0: its median
    torch.testing.assert_close(smoothed[4, 0], positions[4, 0])  # a run of one frame: itself
    torch.testing.assert_close(smoothed[1:4, 1], positions[2, 1].expand(3, 3))  # run 1-3 of slot 1
    torch.testing.assert_close(smoothed[0, 1], positions[0, 1])  # not detected: untouched
