"""L3DAS21 layout parsing and label CSV → frame targets, against hand-computed matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from phnn.data.l3das21.labels import load_targets, num_label_frames, read_events, seconds_to_frame
from phnn.data.l3das21.layout import CLASSES, find_clips, parse_audio_name

HEADER = "File,Start,End,Class,X,Y,Z\n"


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


def make_layout(root: Path, split_folder: str, stems: list[str], mics: str = "AB", labels: bool = True) -> None:
    (root / split_folder / "data").mkdir(parents=True)
    (root / split_folder / "labels").mkdir(parents=True)
    for stem in stems:
        for mic in mics:
            soundfile.write(root / split_folder / "data" / f"{stem}_{mic}.wav", np.zeros((320, 4)), 32000)
        if labels:
            write_csv(root / split_folder / "labels" / f"label_{stem}.csv", [])


def test_parse_audio_name() -> None:
    assert parse_audio_name("split3_ov2_17_B.wav") == ("split3_ov2_17", 2, "B")
    assert parse_audio_name("notes.txt") is None
    assert parse_audio_name("split3_ov2_17.wav") is None


def test_find_clips_pairs_mics_labels_and_filters_ov(tmp_path: Path) -> None:
    make_layout(tmp_path, "L3DAS_Task2_train", ["split1_ov1_1", "split1_ov2_1", "split1_ov3_2"])
    clips = find_clips(tmp_path, "train", mics="AB", ov_subsets=(1, 3))
    assert [c.stem for c in clips] == ["split1_ov1_1", "split1_ov3_2"]
    assert [c.ov for c in clips] == [1, 3]
    assert clips[0].audio["B"].name == "split1_ov1_1_B.wav"
    assert clips[1].labels == tmp_path / "L3DAS_Task2_train" / "labels" / "label_split1_ov3_2.csv"
    assert list(find_clips(tmp_path, "train", mics="A")[0].audio) == ["A"]


def test_missing_folder_names_it_and_the_commands(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"L3DAS_Task2_dev.*phnn download l3das21.*phnn synth"):
        find_clips(tmp_path, "dev")


def test_missing_label_and_missing_mic_are_errors(tmp_path: Path) -> None:
    make_layout(tmp_path, "L3DAS_Task2_train", ["split1_ov1_1"], mics="A", labels=False)
    with pytest.raises(ValueError, match=r"split1_ov1_1_A\.wav: label file .*label_split1_ov1_1\.csv not found"):
        find_clips(tmp_path, "train", mics="A")
    with pytest.raises(ValueError, match=r"split1_ov1_1_B\.wav"):
        find_clips(tmp_path, "train", mics="AB")


def test_bad_mics_and_ov_subsets(tmp_path: Path) -> None:
    make_layout(tmp_path, "L3DAS_Task2_train", ["split1_ov1_1"])
    with pytest.raises(ValueError, match="mics='C'"):
        find_clips(tmp_path, "train", mics="C")
    with pytest.raises(ValueError, match=r"ov_subsets=\[4\]"):
        find_clips(tmp_path, "train", ov_subsets=[4])


def test_num_label_frames_ceil() -> None:
    assert num_label_frames(1_920_000, 32000) == 600  # 60 s
    assert num_label_frames(3200, 32000) == 1
    assert num_label_frames(3201, 32000) == 2  # a partial frame still gets a label frame
    assert num_label_frames(0, 32000) == 1


@pytest.mark.parametrize(("seconds", "frame"), [(0.04, 0), (0.05, 0), (0.15, 1), (0.25, 2), (0.35, 3), (0.55, 6),
                                                (1.45, 14), (2.5, 25)])
def test_seconds_to_frame_is_round_of_the_float_quotient(seconds: float, frame: int) -> None:
    # Python round(t / 0.1) as in the original tools: 0.25 / 0.1 = 2.5 → 2 (half to even),
    # 0.35 / 0.1 = 3.4999999999999996 → 3, 1.45 / 0.1 = 14.499999999999998 → 14.
    assert seconds_to_frame(seconds) == frame == round(seconds / 0.1)


def test_targets_hand_computed(tmp_path: Path) -> None:
    knock, laugh = CLASSES.index("Knock"), CLASSES.index("Laughter")
    path = write_csv(tmp_path / "l.csv", [
        "a,0.04,0.25,Knock,2.0,0.0,-1.0",    # frames round(0.4)=0 .. round(2.5)=2 (half to even)
        "a,0.2,0.4,Knock,0.0,1.0,0.0",       # frames 2..4: slot 1 on 2 (first knock active), slot 0 on 3..4
        "a,0.25,0.3,Knock,1.0,1.0,1.0",      # frames 2..3: slot 2 on 2 (two knocks there), slot 1 on 3
        "a,0.55,9.0,Laughter,-2.0,0.5,0.0",  # frames round(5.5)=6 .. 90, clipped to the 8 frames of the clip
    ])
    sed, doa = load_targets(path, num_frames=8, label_grid="nearest")
    expected = np.zeros((8, 42), np.float32)
    expected[0:3, 3 * knock + 0] = 1
    expected[2, 3 * knock + 1] = 1
    expected[3:5, 3 * knock + 0] = 1
    expected[2, 3 * knock + 2] = 1
    expected[3, 3 * knock + 1] = 1
    expected[6:8, 3 * laugh + 0] = 1
    np.testing.assert_array_equal(sed, expected)
    assert doa.shape == (8, 126)
    col = 3 * knock
    np.testing.assert_allclose(doa[0, [col, col + 42, col + 84]], [1.0, 0.0, -0.5])
    np.testing.assert_allclose(doa[2, [col + 2, col + 44, col + 86]], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(doa[3, [col + 1, col + 43, col + 85]], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(doa[2, [col + 1, col + 43, col + 85]], [0.0, 0.5, 0.0])
    np.testing.assert_allclose(doa[4, [col, col + 42, col + 84]], [0.0, 0.5, 0.0])
    assert doa[5].sum() == 0 and doa[4, col + 1 :: 42].sum() == 0


def test_any_clip_length_and_extra_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "l.csv", ["x,Telephone,0.0,0.1,1,0,0,note"],
                     header="File,Class,Start,End,X,Y,Z,Comment\n")
    for frames in (1, 3, 1234):
        sed, doa = load_targets(path, frames, "nearest")
        assert sed.shape == (frames, 42) and doa.shape == (frames, 126)
        assert sed[:, 3 * CLASSES.index("Telephone")].sum() == min(frames, 2)
        # official: 0.1 s is quantised k = 1, which lands on frame 0 (k − 1): one frame
        assert load_targets(path, frames, "official")[0][:, 3 * CLASSES.index("Telephone")].sum() == 1


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        (HEADER, "a,0.1,0.5,Dog_barking,0,0,0", r"row 1 \(line 2\): field Class='Dog_barking' is not an L3DAS21 class"),
        (HEADER, "a,0.5,0.1,Knock,0,0,0", r"row 1 \(line 2\): field End=0.1 is before Start=0.5"),
        (HEADER, "a,0.1,0.5,Knock,zero,0,0", r"row 1 \(line 2\): field X='zero' is not a number"),
        ("File,Start,End,Class,X,Y\n", "a,0.1,0.5,Knock,0,0", r"missing column\(s\) \['Z'\]"),
    ],
)
def test_label_errors_name_file_row_field(tmp_path: Path, header: str, row: str, message: str) -> None:
    path = write_csv(tmp_path / "label_bad.csv", [row], header=header)
    with pytest.raises(ValueError, match=r"label_bad\.csv.*" + message):
        read_events(path)


def test_fourth_simultaneous_sound_of_a_class(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "l.csv", [f"a,0,1,Knock,{x},0,0" for x in range(4)])
    with pytest.raises(ValueError, match=r"l\.csv, row 4: more than 3 simultaneous Knock"):
        load_targets(path, 20)


def official_matrix(path: Path, dur: float) -> np.ndarray:
    """The official csv_to_matrix_task2 (SED part, step 0.1), written from its description: quantise to
    round(t / step) · step, frame = int(np.interp(q, (0, dur), (0, N − 1))) with N = int(dur / step),
    frames start … end inclusive, slot = sounds of that class already in the frame."""
    step = 0.1
    n = int(dur / step)
    matrix = np.zeros((n, 14, 3))
    for event in read_events(path):
        first, last = (int(np.interp(round(float(t) / step) * step, (0, dur), (0, n - 1)))
                       for t in (event.start, event.end))
        for frame in np.arange(first, last + 1):
            matrix[frame, event.class_index, int(np.sum(matrix[frame, event.class_index]))] = 1.0
    return matrix.reshape(n, 42)


@pytest.mark.parametrize("duration", [60.0, 4.0, 20.0, 7.3, 2.05])
def test_official_grid_is_csv_to_matrix_task2_bit_for_bit(tmp_path: Path, duration: float) -> None:
    rng = np.random.default_rng(int(duration * 100))
    rows = ["a,0.0,0.35,Knock,0,0,0", f"a,0.05,{duration},Laughter,0,0,0",   # 0 s, x.x5 s, touching the end
            f"a,1.45,{duration - 0.05:.2f},Telephone,0,0,0", "a,0.25,0.25,Writing,0,0,0"]
    for _ in range(30):  # random boundary-ish times: tenths and half tenths, and millisecond times
        start = float(rng.choice([rng.integers(0, int(duration * 20)) / 20, rng.uniform(0, duration)]))
        end = min(duration, start + float(rng.uniform(0, 3)))
        rows.append(f"a,{start:.3f},{end:.3f},{CLASSES[int(rng.integers(14))]},0,0,0")
    path = write_csv(tmp_path / "l.csv", rows)
    try:
        expected = official_matrix(path, duration)
    except IndexError:  # more than 3 sounds of one class in a frame: drop the random rows and retry
        path = write_csv(tmp_path / "l.csv", rows[:4])
        expected = official_matrix(path, duration)
    samples = round(duration * 32000)
    frames = num_label_frames(samples, 32000)
    sed, _ = load_targets(path, frames, "official", samples / 32000)
    assert frames >= expected.shape[0]
    np.testing.assert_array_equal(sed[: expected.shape[0]], expected.astype(np.float32))
    assert not sed[expected.shape[0]:].any()  # N = int(dur / 0.1) may be below ceil(dur / 0.1)


@pytest.mark.parametrize(("seconds", "frame"), [(0.0, 0), (0.05, 0), (0.1, 0), (0.15, 0), (0.25, 1), (0.35, 2),
                                                (1.45, 13), (59.95, 599), (60.0, 599)])
def test_official_frame_leads_round_by_one(seconds: float, frame: int) -> None:
    # round(t / 0.1) = k (0.15 / 0.1 = 1.4999999999999998 → 1, 59.95 → 600) lands on k − 1 (0 on 0)
    from phnn.data.l3das21.labels import official_frame

    assert official_frame(seconds, 60.0) == frame == max(round(seconds / 0.1) - 1, 0)
