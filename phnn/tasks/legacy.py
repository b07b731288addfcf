"""The old flat form of `SoundEventDetector`'s arguments, mapped to its shape of today.

`SoundEventDetector` once took every SEDnet option and every DOA setting as a parameter of its own
(`family`, `widths`, ..., `localize`, `doa_loss_weight`, ...). Checkpoints and run folders (`config.yaml`)
written then keep working: `upgrade_sed_args` maps such arguments to `model: {...}` (a `SEDnetConfig`)
and `doa: {...} | None` (a `DOAHead`), by the tables below. It runs on a checkpoint's hyperparameters
(`SoundEventDetector.upgrade_hparams`) and, through `install_config_upgrade`, on every YAML document
jsonargparse loads (config files and `--model` values) before the parser sees it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import yaml

from phnn.data.l3das21.layout import MAX_SLOTS
from phnn.models.sednet import SEDnetConfig

#: old flat argument → the same field of `model` (SEDnetConfig)
NETWORK_KEYS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(SEDnetConfig))
#: old flat argument → field of `doa` (DOAHead)
DOA_KEYS: dict[str, str] = {"sed_loss_weight": "sed_loss_weight", "doa_loss_weight": "loss_weight",
                            "doa_loss_mask": "loss_mask", "doa_loss": "loss", "doa_smoothing": "smoothing",
                            "spatial_threshold": "spatial_threshold"}
#: keys only the SED task ever had (family and n are ImageClassifier's too)
SED_ONLY_KEYS: frozenset[str] = (NETWORK_KEYS - {"family", "n"}) | set(DOA_KEYS) | {"localize", "slots"}
#: how a config names the task
SED_CLASS_PATHS = ("phnn.tasks.SoundEventDetector", "phnn.tasks.sed.SoundEventDetector", "SoundEventDetector")
SUBCOMMANDS = ("fit", "validate", "test", "predict")


def upgrade_sed_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """`SoundEventDetector` arguments with the old flat keys moved into `model` and `doa` (others kept).

    `localize: true` makes `doa` a mapping (the flat DOA settings in it), `localize: false` makes it None;
    flat DOA settings without `localize` (a config file layered over another) also go into `doa`."""
    upgraded = dict(args)
    network = {key: upgraded.pop(key) for key in list(upgraded) if key in NETWORK_KEYS}
    doa = {DOA_KEYS[key]: upgraded.pop(key) for key in list(upgraded) if key in DOA_KEYS}
    localize = upgraded.pop("localize", None)
    slots = upgraded.pop("slots", MAX_SLOTS)
    if slots != MAX_SLOTS:
        raise ValueError(f"SoundEventDetector: slots={slots!r}: the L3DAS21 targets hold {MAX_SLOTS} sounds per class")
    if network:
        upgraded["model"] = {**(upgraded.get("model") or {}), **network}
    if localize is False:
        if doa.get("sed_loss_weight", 1.0) != 1.0:
            raise ValueError(f"SoundEventDetector: sed_loss_weight={doa['sed_loss_weight']!r} without localize: the "
                             "detection loss is weighed only against a DOA loss; leave it out")
        upgraded["doa"] = None
    elif localize or doa:
        upgraded["doa"] = {**(upgraded.get("doa") or {}), **doa}
    return upgraded


def _is_sed_model(group: Mapping[str, Any]) -> bool:
    """Whether a config's `model` group is the SED task's: named so, or (unnamed) with a key only it had."""
    path = group.get("class_path")
    if path is not None:
        return path in SED_CLASS_PATHS
    return bool(set(group["init_args"]) & SED_ONLY_KEYS)


def upgrade_config(value: Any) -> Any:
    """A loaded YAML document with the SED task's old flat `model.init_args` upgraded (at the top level or
    under a subcommand); anything else unchanged."""
    if not isinstance(value, dict):
        return value
    for holder in (value, *(value[name] for name in SUBCOMMANDS if isinstance(value.get(name), dict))):
        group = holder.get("model")
        if isinstance(group, dict) and isinstance(group.get("init_args"), dict) and _is_sed_model(group):
            group["init_args"] = upgrade_sed_args(group["init_args"])
    return value


def install_config_upgrade() -> None:
    """Make jsonargparse's `yaml` loader upgrade what it loads (`upgrade_config`); once per process."""
    from jsonargparse import get_loader, set_loader

    previous = get_loader("yaml")
    if getattr(previous, "upgrades_sed_args", False):
        return

    def load(text: str) -> Any:
        return upgrade_config(previous(text))

    load.upgrades_sed_args = True  # type: ignore[attr-defined]
    set_loader("yaml", load, exceptions=(yaml.YAMLError,))
