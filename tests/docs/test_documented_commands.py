"""Every `phnn ...` command the docs show runs as written, in order, on tiny stand-in data.

Commands come from README.md, phnn/configs/README.md, every `docs/*.md` page and the "Examples:" of each
subcommand's `--help` (fit/validate/test/predict and every command in `phnn.cli.EXTRA_COMMANDS`), so a
command added to any of them later (a new page included) is picked up without touching this file.
The ```python blocks of the same documents run too (each document's blocks in order, in one namespace,
in a scratch folder: a block that is not meant to run is not fenced as python), and each `python
SCRIPT` / `python -m MODULE` / `make TARGET` they show names a script, module or target that exists,
with options the script defines (those are not run: they take minutes). The commands run in-process
through `phnn.cli.main`, in a scratch folder laid out like a user's folder (configs are found by name):
`data/cifar10`, `data/svhn`, `data/l3das21` (tiny files in each dataset's own format) and
`data/my_images/`. The only changes made to a command are the ones listed in the tables below:
placeholders, trainer limits (one tiny batch, on the CPU) and smaller `phnn synth` sizes.
Afterwards the scratch folder must hold one run folder per fit and nothing the docs did not name.

Also a script, for the walk-through numbers of the issue (one process per command, like a user):

    PYTHONPATH=CHECKOUT python tests/docs/test_documented_commands.py --repo CHECKOUT
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))  # the fixture writers, also when run as a script
from dataset_files import (  # noqa: E402
    skip_checksums,
    write_cifar10,
    write_image_folder,  # noqa: E402
    write_svhn,
)

REPO = TESTS.parent
# The documents whose commands run, as globs in walk order: the README first (its commands set the scene).
DOCUMENT_GLOBS = ("README.md", "phnn/configs/README.md", "docs/*.md")
IMAGES = "data/my_images"
SED_ROOT = "data/l3das21"


@dataclass
class Walk:
    """The state of a walk through the docs: where it runs, and the run folders its fits made."""

    root: Path
    expensive: bool = True  # also run the commands of `EXPENSIVE`
    runs: list[Path] = field(default_factory=list)

    def last_run(self, data: str = "") -> str:
        """The run folder of the latest fit (on a DataModule whose name contains `data`, when given)."""
        chosen = [run for run in self.runs if data in (run / "config.yaml").read_text()]
        if not chosen:
            raise LookupError(f"no fit{' on ' + data if data else ''} ran before this command")
        return str(chosen[-1].relative_to(self.root))

    def predict_inputs(self) -> str:
        """Files to predict on that suit the latest run: the synthetic dev clips, or the images."""
        sed = "L3DAS21DataModule" in (self.root / self.last_run() / "config.yaml").read_text()
        return f"{SED_ROOT}/L3DAS_Task2_dev/data" if sed else IMAGES


# ---- the one place that says how documented commands are adapted -------------------------------------

# Placeholders in the docs → what stands in for them. A key matches a whole argument (or an
# option's value after `=`), alone or followed by `/...`.
PLACEHOLDERS: dict[str, Callable[[Walk], str]] = {
    "RUN": lambda walk: walk.last_run(),                        # "the run folder of your fit"
    "PATH": Walk.predict_inputs,                                # "your clips / images"
    "OUT": lambda walk: "out",                                  # "an output folder of yours"
    "/data/svhn": lambda walk: "data/svhn",                     # an absolute data root
    "my_images": lambda walk: IMAGES,                           # your images, at the top of a checkout
    # what `make demo` writes: its run, its predictions, its synthetic data
    "demo_output/runs/demo/version_0": lambda walk: walk.last_run("L3DAS21DataModule"),
    "demo_output/predictions": lambda walk: walk.last_run("L3DAS21DataModule") + "/predictions",
    "demo_output/data": lambda walk: SED_ROOT,
}

# Arguments appended to each kind of command: the smallest run that still goes through every step,
# on this machine's CPU (GPU and DDP trainer configs included). Later flags override the docs' own.
TRAINER_LIMITS = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
                  "--trainer.limit_test_batches=1", "--trainer.limit_predict_batches=2",
                  "--trainer.num_sanity_val_steps=0", "--trainer.accelerator=cpu", "--trainer.devices=1",
                  "--trainer.strategy=auto", "--trainer.precision=32-true", "--trainer.sync_batchnorm=false",
                  "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
                  "--data.batch_size=2", "--data.num_workers=0"]
APPENDED: dict[str, list[str]] = {
    "fit": TRAINER_LIMITS, "validate": TRAINER_LIMITS, "test": TRAINER_LIMITS, "predict": TRAINER_LIMITS,
    "synth": ["--train-clips", "1", "--dev-clips", "1", "--duration", "2"],
    "inspect": ["--no-plots"],  # a PNG per PH layer takes seconds; tests/cli/test_inspect_export.py checks them
    "compress": TRAINER_LIMITS,
}

# Appended to a fit on L3DAS21 data (a config it names holds the L3DAS21 DataModule): training windows as long as
# the stand-in clips (4 s, as the conftest's l3das21_root), where the configs ask for 5 to 60 s windows of mostly
# padding (the 60 s windows of seldnet_baseline.yaml alone took half a minute).
SED_CLIP_SECONDS = 4.0
SED_FIT = [f"--data.segment_seconds={SED_CLIP_SECONDS:g}"]

# Commands that make a run folder of their own (a student's run, for compress).
RUN_MAKERS = ("fit", "compress")

# Commands that cannot run offline, by a word they contain → why.
ONLINE: dict[str, str] = {"download": "downloads from the internet"}

# Commands too slow for `make test`, by a word they contain → why; `make test-all` runs them too.
EXPENSIVE: dict[str, str] = {"--format onnx": "the ONNX exporter takes minutes on a recurrent model on a CPU",
                             "sed/paper.yaml": "the published SEDnet on whole clips: half a minute on a CPU"}

# Commands that only print (help, the resolved config) get nothing appended.
PRINT_ONLY = ("--help", ".help", "--print_config")

# A command with one of these is a synopsis (`--config data/<dataset>.yaml`, `a|b`), not a command.
SYNOPSIS = ("<", "[", "|", "…", "...")


# ---- finding the commands ---------------------------------------------------------------------------------


def documents(repo: Path = REPO) -> list[str]:
    """The documents of `DOCUMENT_GLOBS` in `repo`, as paths relative to it, in walk order."""
    found: list[str] = []
    for pattern in DOCUMENT_GLOBS:
        found += [path.relative_to(repo).as_posix() for path in sorted(repo.glob(pattern)) if path.is_file()]
    return found


def commands_in_markdown(text: str) -> list[str]:
    """`phnn ...` lines of code blocks (fenced or indented, with `\\` continuations) and inline `phnn --x`
    spans that have options, in document order."""
    found: list[str] = []
    lines = text.splitlines()
    fenced = False
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if (fenced or line.startswith("    ")) and line.strip().startswith("phnn "):
            command = line.strip()
            while command.endswith("\\") and index < len(lines):
                command = command[:-1].rstrip() + " " + lines[index].strip()
                index += 1
            found.append(command)
        elif not fenced:
            found += [span for span in re.findall(r"`(phnn [^`]+)`", line) if " --" in span or " -c " in span]
    return found


def python_blocks(text: str) -> list[str]:
    """The ```python fenced blocks of a markdown text, in document order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def script_commands(text: str) -> list[str]:
    """`python SCRIPT|-m MODULE ...` and `make TARGET` commands: lines of code blocks other than ```python ones,
    and inline spans."""
    found: list[str] = []
    fence = ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = "" if fence else line.strip()
            continue
        command = line.strip()
        if (fence or line.startswith("    ")) and fence != "```python" and re.match(r"(python3?|make) ", command):
            found.append(command)
        elif not fence:
            found += re.findall(r"`((?:python3?|make) [^`]+)`", line)
    return found


def script_problem(command: str, repo: Path = REPO) -> str | None:
    """Why a documented `python ...` / `make ...` command cannot run as written, or None: a Makefile target,
    script or module that does not exist, or an option the script does not define."""
    argv = shlex.split(command, comments=True)
    if argv[0] == "make":
        targets = set(re.findall(r"^([\w-]+):", (repo / "Makefile").read_text(), flags=re.MULTILINE))
        missing = [arg for arg in argv[1:] if arg not in targets]
        return f"no Makefile target {missing}" if missing else None
    module = argv[2] if argv[1] == "-m" and len(argv) > 2 else None
    source = repo / (module.replace(".", "/") + ".py" if module else argv[1])
    if module and not source.is_file():  # a package runs its __main__
        source = repo / module.replace(".", "/") / "__main__.py"
    if not source.is_file():
        return f"{source.relative_to(repo)} does not exist"
    text = source.read_text(encoding="utf-8")
    unknown = [arg.split("=")[0] for arg in argv if arg.startswith("--") and f'"{arg.split("=")[0]}"' not in text]
    return f"{source.relative_to(repo)} defines no option {unknown}" if unknown else None


def documented_config_names(repo: Path = REPO) -> set[str]:
    """The configs the documents name by `-c X` / `--config X` / `--config=X`, other than a run's own config.yaml
    and synopses: configs a user finds by name among those phnn ships."""
    names: set[str] = set()
    for name in documents(repo):
        for command in commands_in_markdown((repo / name).read_text(encoding="utf-8")):
            argv = shlex.split(command, comments=True)
            values = [value for option, value in itertools.pairwise(argv) if option in ("-c", "--config")]
            values += [arg.partition("=")[2] for arg in argv if arg.startswith("--config=")]
            names |= {v for v in values if not v.endswith("config.yaml") and not any(m in v for m in SYNOPSIS)}
    return names


def commands_in_help(text: str) -> list[str]:
    """The block of `phnn ...` lines right under the last "Examples:" line of a help text."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "Examples:"]
    commands: list[str] = []
    for line in lines[starts[-1] + 1:] if starts else []:
        if not line.strip().startswith("phnn "):
            break
        commands.append(line.strip())
    return commands


def help_text(command: str) -> str:
    from phnn.cli import main

    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.suppress(SystemExit):  # (older phnn let it escape)
        main([command, "--help"])
    return output.getvalue()


def documented_commands(repo: Path = REPO) -> list[tuple[str, str]]:
    """(source, command) for every documented command, in walk order: the documents, then the helps."""
    from phnn import cli

    found = [(name, command) for name in documents(repo)
             for command in commands_in_markdown((repo / name).read_text(encoding="utf-8"))]
    for name in ["fit", "validate", "test", "predict", *cli.EXTRA_COMMANDS]:
        found += [(f"phnn {name} --help", command) for command in commands_in_help(help_text(name))]
    return found


# ---- running them -----------------------------------------------------------------------------------------


def adapt(command: str, walk: Walk) -> list[str] | str:
    """The argv to run for a documented command, or the reason it is not run."""
    argv = shlex.split(command, comments=True)[1:]
    text = " ".join(argv)
    if any(mark in text for mark in SYNOPSIS):
        return "a synopsis, not a command"
    for word, reason in {**ONLINE, **({} if walk.expensive else EXPENSIVE)}.items():
        if word in text:
            return reason

    def substitute(value: str) -> str:
        for key, replacement in PLACEHOLDERS.items():
            if value == key or value.startswith(key + "/"):
                return replacement(walk) + value[len(key):]
        return value

    adapted = []
    for arg in argv:
        option, equals, value = arg.partition("=")
        adapted.append(option + equals + substitute(value) if equals and arg.startswith("-") else substitute(arg))
    if any(mark in arg for arg in adapted for mark in PRINT_ONLY):
        return adapted
    sed_fit = SED_FIT if adapted[:1] == ["fit"] and trains_on_l3das21(adapted, walk.root) else []
    return adapted + APPENDED.get(adapted[0] if adapted else "", []) + sed_fit


def trains_on_l3das21(argv: list[str], root: Path) -> bool:
    """Whether a config that `argv` names (`-c X`, `--config X`, `--config=X`: a path from `root`, or the name of
    a shipped config) uses L3DAS21 data."""
    from phnn.config_files import find_config

    names = [value for option, value in itertools.pairwise(argv) if option in ("-c", "--config")]
    names += [arg.partition("=")[2] for arg in argv if arg.startswith("--config=")]
    with contextlib.chdir(root):
        files = [find_config(name).resolve() for name in names]
    return any("L3DAS21DataModule" in file.read_text(encoding="utf-8") for file in files)


def make_workspace(root: Path, sed_source: Path | None = None, repo: Path = REPO) -> Path:
    """A user's folder in miniature: tiny data where the docs expect it (configs are found by name)."""
    root.mkdir(parents=True, exist_ok=True)
    write_cifar10(root / "data" / "cifar10")
    write_svhn(root / "data" / "svhn")
    write_image_folder(root / IMAGES, per_class=6, size=16)
    if sed_source is not None:
        shutil.copytree(sed_source, root / SED_ROOT)
    else:
        from phnn.data.l3das21.synth import synthesize

        synthesize(root / SED_ROOT, train_clips=4, dev_clips=2, duration=SED_CLIP_SECONDS, max_overlap=3, mic_b=True,
                   seed=0)
    return root


@dataclass
class Outcome:
    source: str
    command: str
    argv: list[str] | None
    code: int | None = None
    skipped: str | None = None
    output: str = ""


def versions(root: Path) -> list[Path]:
    return sorted((root / "runs").glob("*/version_*"), key=lambda p: (p.stat().st_mtime, str(p)))


def walk_docs(root: Path, run: Callable[[list[str]], tuple[int, str]], repo: Path = REPO,
              expensive: bool = True) -> tuple[Walk, list[Outcome]]:
    """Run every documented command in order in `root`; `run(argv)` returns (exit code, output)."""
    walk = Walk(root, expensive)
    outcomes: list[Outcome] = []
    seen: set[tuple[str, ...]] = set()
    for source, command in documented_commands(repo):
        try:
            argv = adapt(command, walk)
        except LookupError as error:
            argv = f"placeholder without a value: {error}"
        if isinstance(argv, str):
            outcomes.append(Outcome(source, command, None, skipped=argv))
            continue
        if tuple(argv) in seen:
            outcomes.append(Outcome(source, command, argv, skipped="the same command ran before"))
            continue
        seen.add(tuple(argv))
        before = set(versions(root))
        code, output = run(argv)
        if argv[0] in RUN_MAKERS:
            walk.runs += [p for p in versions(root) if p not in before and (p / "config.yaml").is_file()]
        outcomes.append(Outcome(source, command, argv, code, output=output))
    return walk, outcomes




def run_in_process(argv: list[str]) -> tuple[int, str]:
    from phnn.cli import main

    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        code = main(argv)
    return code, output.getvalue()


def fits_of(outcomes: list[Outcome]) -> list[Outcome]:
    """The fits that trained (not `--help` or `--print_config`)."""
    return [o for o in outcomes if o.argv and o.argv[0] in RUN_MAKERS and o.code == 0
            and not any(mark in arg for arg in o.argv for mark in PRINT_ONLY)]


def named_outputs(outcomes: list[Outcome]) -> set[str]:
    """Top-level names of what the run commands were told to write (`--out`, `--writer.output_dir`)."""
    names = set()
    for outcome in outcomes:
        argv = outcome.argv or []
        for index, arg in enumerate(argv):
            option, _, value = arg.partition("=")
            if option in ("--out", "--writer.output_dir"):
                value = value or (argv[index + 1] if index + 1 < len(argv) else "")
                names.add(Path(value).parts[0])
    return names


# ---- the test ---------------------------------------------------------------------------------------------


def test_the_docs_show_the_commands_that_matter() -> None:
    """The extraction itself: each document and help contributes the commands a user copies."""
    found = documented_commands()
    commands = [command for _, command in found]
    assert {"README.md", "docs/sed.md", "docs/images.md", "docs/runs.md"} <= set(documents())
    assert {source for source, _ in found} >= {"README.md", "docs/sed.md", "phnn fit --help", "phnn test --help",
                                               "phnn predict --help", "phnn inspect --help"}
    assert any(c.startswith("phnn inspect --config") for c in commands)  # broken once by the config order
    assert any(c.startswith("phnn predict") and "predict_path" in c for c in commands)
    assert trains_on_l3das21(["fit", "-c", "sed/seldnet_baseline.yaml"], REPO)
    assert not trains_on_l3das21(["fit", "--config=data/svhn.yaml"], REPO)
    assert commands_in_markdown("text `phnn test` and `phnn fit --x 1`\n\n    phnn a \\\n      --b c  # note\n") == \
        ["phnn fit --x 1", "phnn a --b c  # note"]


def documents_with_python() -> list[str]:
    return [name for name in documents() if python_blocks((REPO / name).read_text(encoding="utf-8"))]


@pytest.mark.parametrize("document", documents_with_python())
def test_documented_python_runs(document: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A document's python blocks run in order, as one session, in a scratch folder."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__"}
    for index, block in enumerate(python_blocks((REPO / document).read_text(encoding="utf-8")), start=1):
        exec(compile(block, f"{document}, python block {index}", "exec"), namespace)  # noqa: S102


def test_documented_scripts_and_targets_exist() -> None:
    """`python SCRIPT ...`, `python -m MODULE ...` and `make TARGET` in the docs name what exists."""
    found = [(name, command) for name in documents()
             for command in script_commands((REPO / name).read_text(encoding="utf-8"))]
    assert {"make demo", "make test"} <= {command for name, command in found if name == "README.md"}
    assert any(command.startswith("python bench/") for _, command in found)
    problems = [f"{name}: {command}: {why}" for name, command in found if (why := script_problem(command))]
    assert not problems, "\n".join(problems)
    assert script_commands("```python\nprint(1)\n```\n    python bench/x.py --a\n`make test` and `python -m m`\n") \
        == ["python bench/x.py --a", "make test", "python -m m"]
    assert script_problem("python bench/layers.py --threads 1") is None
    assert script_problem("python bench/layers.py --nope") and script_problem("make nothing")


def test_the_configs_the_docs_name_are_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by name from a folder of the user's, with no checkout around: what a wheel install has."""
    from phnn.config_files import SHIPPED_CONFIGS, find_config

    monkeypatch.chdir(tmp_path)
    names = documented_config_names()
    assert {"sed/demo.yaml", "sed/seldnet_baseline.yaml", "trainer/gpu.yaml", "model/family/phc3.yaml"} <= names
    assert [name for name in sorted(names) if not find_config(name).is_relative_to(SHIPPED_CONFIGS)] == []


def walk_and_check(root: Path, l3das21_root: Path, expensive: bool) -> None:
    """Run the docs in `root`: every command exits 0, one run folder per fit, no stray files."""
    make_workspace(root, l3das21_root)
    before = {p.name for p in root.iterdir()}
    with contextlib.chdir(root):
        walk, outcomes = walk_docs(root, run_in_process, expensive=expensive)
    failed = [f"{o.source}: {o.command}\n  ran: phnn {shlex.join(o.argv)}\n  exit {o.code}:\n{o.output[-2500:]}"
              for o in outcomes if o.code not in (None, 0)]
    assert not failed, "\n\n".join(failed)
    ran = [o for o in outcomes if o.code == 0]
    assert len(ran) >= 15 and {o.argv[0] for o in ran} >= {"fit", "validate", "test", "predict", "inspect", "synth"}
    assert expensive == any(o.argv[0] == "export" for o in ran)  # the README exports to ONNX
    assert not [o for o in outcomes if o.skipped and o.skipped.startswith("placeholder")]
    # one run folder per fit, and nothing else in the checkout but what the commands were told to write
    assert len(versions(root)) == len(fits_of(outcomes)) == len(walk.runs)
    assert {p.name for p in root.iterdir()} - before <= {"runs"} | named_outputs(outcomes)


def test_every_documented_command_runs(tmp_path: Path, l3das21_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    skip_checksums(monkeypatch)
    walk_and_check(tmp_path / "checkout", l3das21_root, expensive=False)


@pytest.mark.slow
def test_every_documented_command_runs_the_expensive_ones_too(tmp_path: Path, l3das21_root: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    skip_checksums(monkeypatch)
    walk_and_check(tmp_path / "checkout", l3das21_root, expensive=True)


# ---- the walk-through as a script ---------------------------------------------------------------------------

WARNING = re.compile(r"^\S+\.py:\d+: ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Walk through the docs of a checkout; count run folders and warnings.")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose docs and code to use")
    parser.add_argument("--work", type=Path, default=Path("docs_walk"), help="scratch folder (must not exist)")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    root = make_workspace(args.work.resolve(), repo=repo)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(TESTS)])}
    sitecustomize = root.parent / f".{root.name}_site"
    sitecustomize.mkdir(exist_ok=True)
    (sitecustomize / "sitecustomize.py").write_text(  # the tiny dataset files carry no real checksums
        "import torchvision.datasets.cifar as c, torchvision.datasets.svhn as s\n"
        "c.check_integrity = s.check_integrity = lambda *a, **k: True\n")
    env["PYTHONPATH"] += os.pathsep + str(sitecustomize)

    def run(command: list[str]) -> tuple[int, str]:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "phnn", *command], cwd=root, env=env, capture_output=True,
                              text=True)
        return done.returncode, f"[{time.perf_counter() - start:.1f} s]\n{done.stderr}"

    walk, outcomes = walk_docs(root, run, repo)
    total_warnings = 0
    for outcome in outcomes:
        if outcome.skipped:
            print(f"skip  {outcome.command[:100]}  ({outcome.skipped})")
            continue
        warnings = [line for line in outcome.output.splitlines() if WARNING.match(line)]
        total_warnings += len(warnings)
        seconds = outcome.output.split("\n", 1)[0]
        print(f"exit {outcome.code}  warnings {len(warnings)}  {seconds}  phnn {shlex.join(outcome.argv)[:100]}")
        for line in warnings:
            print(f"        {line[:160]}")
    print(f"\nfits that trained: {len(fits_of(outcomes))}; run folders: {len(versions(root))}; "
          f"warning lines: {total_warnings}; failed commands: {sum(o.code not in (None, 0) for o in outcomes)}")
    print("top level of the checkout:", sorted(p.name for p in root.iterdir()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
