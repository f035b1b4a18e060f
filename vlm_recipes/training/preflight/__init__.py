"""Preflight: check a recipe's data against the model's processor before any GPU time is spent.

Every row of the train and held-out splits (or a random sample per split) goes through the method's own collator,
rendered and expanded exactly as training does, and every bad row is reported in one pass, each with the fix for its
own defect, with a count of bad rows by kind of defect: the image files (missing or 0-byte files are reported row by
row here, where training stops at the first), that they decode (the file is named when the data is local), their
modes (RGBA / L / CMYK / P are converted to RGB and counted; 16-bit and float images are refused), their size
(refused above `max_image_pixels`, read from the header before decoding), the messages (roles, parts), image
placeholders against images in both directions, and tokens per sample including image tokens; rows whose image
tokens (or whole answer) would not fit in `max_length` are errors (the collators' one truncation rule,
`data.collators.overflow`), rows whose text would be truncated are counted. Reports min / median / max tokens and an
estimate of tokens per epoch.

- `checks`: the row checker (`check_split`, `check_recipe_data`) and `guard`, the start-up check of every recipe (a
  random sample of `preflight_rows` rows per split; `all` for every row, `--preflight false` to skip), after the
  processor and data load and before the model does;
- `report`: what was found (`Report`, `RowProblem`) and how it reads;
- `overlap`: the contamination check (`guard_overlap`, `measure_run`): the training data's overlap with the held-out
  split and the named benchmarks, by image content and question text; refused above `max_overlap` unless
  `allow_overlap: true`;
- `clean`: `--write_clean`, a copy of a local data file without the bad rows and a manifest of kept / dropped ids;
- the command line is `python -m vlm_recipes.launch.preflight` (`make preflight CONFIG=...`): it parses the config
  exactly as the recipe does, so an unknown YAML key or reward name fails there too.
"""

from .checks import check_recipe_data, check_split, guard
from .clean import clean_source, write_clean
from .overlap import guard_overlap, measure_run
from .report import ID_COLUMNS, PreflightError, Report, RowProblem, defect_summary

__all__ = [
    "ID_COLUMNS",
    "PreflightError",
    "Report",
    "RowProblem",
    "check_recipe_data",
    "check_split",
    "clean_source",
    "defect_summary",
    "guard",
    "guard_overlap",
    "measure_run",
    "write_clean",
]
