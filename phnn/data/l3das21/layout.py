"""Where L3DAS21 Task 2 files live on disk, and how clips pair their mics and labels.

Layout (exactly the official archives)::

    <root>/L3DAS_Task2_train/data/split<S>_ov<K>_<I>_A.wav    mic A, 4 channels (FOA), 32 kHz
    <root>/L3DAS_Task2_train/data/split<S>_ov<K>_<I>_B.wav    mic B (optional)
    <root>/L3DAS_Task2_train/labels/label_split<S>_ov<K>_<I>.csv
    <root>/L3DAS_Task2_dev/...                                  same layout (our test set)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from phnn.errors import DatasetNotFoundError

CLASSES: tuple[str, ...] = (
    "Chink_and_clink",
    "Computer_keyboard",
    "Cupboard_open_or_close",
    "Drawer_open_or_close",
    "Female_speech_and_woman_speaking",
    "Finger_snapping",
    "Keys_jangling",
    "Knock",
    "Laughter",
    "Male_speech_and_man_speaking",
    "Printer",
    "Scissors",
    "Telephone",
    "Writing",
)
NUM_CLASSES = len(CLASSES)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}  # the `Class` field → index
MAX_SLOTS = 3  # simultaneous sounds of one class that the targets can hold
SAMPLE_RATE = 32000
CHANNELS_PER_MIC = 4
LABEL_FRAMES_PER_SECOND = 10  # label (and output) frames per second, exact for rounding
LABEL_FRAME_SECONDS = 1 / LABEL_FRAMES_PER_SECOND  # one label frame: 100 ms
STFT_FRAMES_PER_LABEL_FRAME = 8  # STFT hop = label frame / 8 (SEDnet's time pooling maps 8 frames to 1)
#: in a prediction folder: the per-clip frame files in the challenge's format (and nothing else)
SUBMISSION_FOLDER = "l3das21_task2"

SPLIT_FOLDERS: dict[str, str] = {"train": "L3DAS_Task2_train", "dev": "L3DAS_Task2_dev"}
_MIC_SETS: dict[str, tuple[str, ...]] = {"A": ("A",), "AB": ("A", "B")}
_AUDIO_RE = re.compile(r"^(?P<stem>split\d+_ov(?P<ov>\d+)_\d+)_(?P<mic>[AB])\.wav$", re.IGNORECASE)


@dataclass(frozen=True)
class Clip:
    """One recording: its stem (``split1_ov2_7``), overlap subset, audio file per mic, label file."""

    stem: str
    ov: int
    audio: dict[str, Path] = field(hash=False)
    labels: Path | None = None


def mic_set(mics: str) -> tuple[str, ...]:
    """``"A"`` → ``("A",)``, ``"AB"`` → ``("A", "B")``; anything else is a ValueError."""
    if mics not in _MIC_SETS:
        raise ValueError(f"mics={mics!r}: expected one of {sorted(_MIC_SETS)}")
    return _MIC_SETS[mics]


def split_folder(root: str | Path, split: str) -> Path:
    """The folder of one split (``train`` or ``dev``), checked to exist with its ``data``/``labels``."""
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"split={split!r}: expected one of {sorted(SPLIT_FOLDERS)}")
    folder = Path(root) / SPLIT_FOLDERS[split]
    for sub in ("data", "labels"):
        if not (folder / sub).is_dir():
            raise DatasetNotFoundError(
                f"L3DAS21 folder {folder / sub} not found: expected the Task 2 layout under root={root}; "
                f"get it with `phnn download l3das21 --set {split} --out {root}` or make a synthetic one "
                f"with `phnn synth --out {root}`"
            )
    return folder


def parse_audio_name(name: str) -> tuple[str, int, str] | None:
    """``split1_ov2_7_A.wav`` → ``("split1_ov2_7", 2, "A")``; None for names outside the layout."""
    match = _AUDIO_RE.match(name)
    if match is None:
        return None
    return match["stem"], int(match["ov"]), match["mic"].upper()


def label_path(folder: Path, stem: str) -> Path:
    """The label file of clip `stem` in a split folder: `<folder>/labels/label_<stem>.csv`."""
    return folder / "labels" / f"label_{stem}.csv"


def find_clips(
    root: str | Path,
    split: str,
    mics: str = "A",
    ov_subsets: tuple[int, ...] | list[int] = (1, 2, 3),
    require_labels: bool = True,
) -> list[Clip]:
    """All clips of a split with every requested mic (and their label file), sorted by stem.

    A clip missing a requested mic or its labels is an error, not a silent skip: a half-copied
    dataset should be noticed before training on it.
    """
    wanted = mic_set(mics)
    subsets = {int(k) for k in ov_subsets}
    if not subsets or not subsets <= {1, 2, 3}:
        raise ValueError(f"ov_subsets={list(ov_subsets)!r}: expected a non-empty subset of [1, 2, 3]")
    folder = split_folder(root, split)
    found: dict[str, tuple[int, dict[str, Path]]] = {}
    for path in sorted((folder / "data").iterdir()):
        parsed = parse_audio_name(path.name)
        if parsed is None:
            continue
        stem, ov, mic = parsed
        if ov in subsets:
            found.setdefault(stem, (ov, {}))[1][mic] = path
    clips = []
    for stem, (ov, audio) in sorted(found.items()):
        missing = [m for m in wanted if m not in audio]
        if missing:
            raise ValueError(
                f"{folder / 'data'}: clip {stem} has no {', '.join(f'{stem}_{m}.wav' for m in missing)} "
                f"(mics={mics!r} needs {list(wanted)})"
            )
        labels = label_path(folder, stem)
        if require_labels and not labels.is_file():
            raise ValueError(f"{audio[wanted[0]]}: label file {labels} not found")
        clips.append(Clip(stem, ov, {m: audio[m] for m in wanted}, labels))
    if not clips:
        raise ValueError(
            f"{folder / 'data'}: no clips named split<S>_ov<K>_<I>_<A|B>.wav with ov in {sorted(subsets)}"
        )
    return clips
