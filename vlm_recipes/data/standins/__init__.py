"""Offline stand-ins for the Hub datasets our real configs name: same splits, columns and feature types, a few rows.

The real datasets cannot be downloaded here (no Hub), but a config that names a wrong split or column, or that
assumes one image where the data has a list, should still fail in a test, not on a GPU hours later. Each record
(in vqa.py, alignment.py, baselines.py, benchmarks.py, captions.py, grounding.py) copies one dataset's schema from
its dataset card (the card's `dataset_info` and `configs:` YAML; the URL is in the record) and writes a few rows of
realistic content as a local folder laid out like the Hub repository: Parquet files at the repository's paths
(`data/<split>-00000-of-00001.parquet`, or `<config>/<split>-...`) and a README.md whose YAML has the card's
`configs:` and `dataset_info`. `datasets.load_dataset(<folder>, <config>)` then reads it with the same Parquet
builder, split resolution and feature decoding as `load_dataset(<hub id>, <config>)`; only the name differs. Images
are small drawings in the source's format (JPEG photos, PNG charts and pages).

    python -m vlm_recipes.data.standins /tmp/standins            # every stand-in, under /tmp/standins/<hub id>
    python recipes/sft.py --config recipes/configs/smolvlm-256m-instruct/sft_lora_chartqa.yaml \\
        --dataset_name /tmp/standins/HuggingFaceM4/ChartQA --model_name_or_path tiny:smolvlm ...

What a stand-in does not reproduce: the row counts (a handful per split, so a held-out fraction is one or two
rows), the image sizes, and the answers of splits the benchmark withholds (stored as null).
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml
from datasets import Dataset

from ...settings.common import current_dataset_id
from . import alignment, baselines, benchmarks, captions, grounding, video, vqa
from .schema import StandIn

STANDINS: dict[str, StandIn] = {
    s.hub_id: s
    for s in (
        *vqa.RECORDS,
        *alignment.RECORDS,
        *baselines.RECORDS,
        *benchmarks.RECORDS,
        *captions.RECORDS,
        *video.RECORDS,
        *grounding.RECORDS,
    )
}


def _card(standin: StandIn, sizes: dict[str, dict[str, tuple[int, int]]]) -> str:
    """README.md with the card's `dataset_info` and `configs:` YAML, as the real repository has them."""
    infos, configs = [], []
    for config, features in standin.features.items():
        splits = [{"name": s, "num_bytes": float(b), "num_examples": len_} for s, (b, len_) in sizes[config].items()]
        info = {"features": features._to_yaml_list(), "splits": splits}
        infos.append(info if config == "default" else {"config_name": config, **info})
        patterns = {
            s: standin.files.format(config=config, split=s).replace("00000-of-00001.parquet", "*")
            for s in sizes[config]
        }
        configs.append({"config_name": config, "data_files": [{"split": s, "path": p} for s, p in patterns.items()]})
    meta = {"dataset_info": infos[0] if len(infos) == 1 else infos, "configs": configs}
    return (
        "---\n"
        + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
        + f"---\n\n# Offline stand-in for `{standin.hub_id}`\n\nWritten by `vlm_recipes.data.standins`: the splits, "
        f"columns and feature types of the real dataset (schema from {standin.card}), a few rows of drawn content.\n"
    )


def write_standin(hub_id: str, root: str | Path) -> Path:
    """Write the stand-in of `hub_id` to `<root>/<hub_id>` (replacing its files) and return that folder, which
    `load_dataset` reads like the Hub repository. A moved dataset's old id writes it under its new id."""
    hub_id = current_dataset_id(hub_id, "stand-in")
    if hub_id not in STANDINS:
        raise ValueError(f"No stand-in for {hub_id!r}; stand-ins exist for {sorted(STANDINS)}.")
    standin = STANDINS[hub_id]
    folder = Path(root) / hub_id
    sizes: dict[str, dict[str, tuple[int, int]]] = {}
    for config, features in standin.features.items():
        sizes[config] = {}
        for split, n in standin.splits[config].items():
            rows = standin.rows(config, split, n, random.Random(f"{hub_id}/{config}/{split}"))
            ds = Dataset.from_list(rows, features=features)
            path = folder / standin.files.format(config=config, split=split)
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(path))
            sizes[config][split] = (ds.data.nbytes, len(ds))
            if standin.extra is not None:
                standin.extra(folder, rows)
    (folder / "README.md").write_text(_card(standin, sizes))
    return folder


def write_standins(root: str | Path, hub_ids=None) -> dict[str, Path]:
    """Write the stand-ins of `hub_ids` (default: all) under `root`; {hub id: folder}."""
    return {current_dataset_id(h, "stand-in"): write_standin(h, root) for h in (hub_ids or STANDINS)}
