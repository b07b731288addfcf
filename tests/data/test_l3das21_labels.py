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
    sed, doa = load_targets(path, num_frames=8)
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
        sed, doa = load_targets(path, frames)
        assert sed.shape == (frames, 42) and doa.shape == (frames, 126)
        assert sed[:, 3 * CLASSES.index("Telephone")].sum() == min(frames, 2)


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
    path = write_csv(tmp_path / "l.csv", ["a,0,1,Knock,0,0,0"] * 4)
    with pytest.raises(ValueError, match=r"l\.csv, row 4: more than 3 simultaneous Knock"):
        load_targets(path, 20)
