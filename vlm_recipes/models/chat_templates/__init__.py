"""Chat templates shipped as data (this folder), and the training template of a processor.

TRL ships the real chat templates of many models with `*_training` variants whose `{% generation %}` markers give the
assistant mask (`trl.chat_template_utils.get_training_chat_template`). What we add: the LLaVA-1.5 and
LLaVA-OneVision templates TRL lacks, byte for byte (README.md names the sources), with our training variants, a
training variant of Gemma 4's template (TRL ships the original only), and a
refusal of any template whose assistant mask leaves out the end-of-turn token (a model trained on it never learns to
stop), where TRL only logs a warning.

>>> from vlm_recipes.tiny.vlm import build_processor
>>> training_chat_template(build_processor("llava")) == TEMPLATES["llava_1_5_training"]
True
"""

from __future__ import annotations

from pathlib import Path

from trl import chat_template_utils as trl_templates
from trl.chat_template_utils import get_training_chat_template, is_chat_template_stop_token_trained

_DIR = Path(__file__).parent
# name -> template text (the file's exact bytes, so equality with a checkpoint's template is identity)
TEMPLATES = {path.stem: path.read_text(encoding="utf-8") for path in sorted(_DIR.glob("*.jinja"))}
# original -> training variant
TRAINING = {TEMPLATES[name]: TEMPLATES[f"{name}_training"] for name in ("llava_1_5", "llava_onevision")}
# Gemma 4: TRL ships the originals (every revision of gemma-4-E2B-it's template) but no training variant; ours renders
# what the revisions since b446025's successor render (`gemma4`, `_v4`, `_v5`; tests/test_family_gemma4.py). The
# release revisions (`_v2`, `_v3`) write "\n\n<|image|>\n\n" around an image: no training variant, so refused.
for _name in ("gemma4", "gemma4_v4", "gemma4_v5"):
    TRAINING[getattr(trl_templates, f"{_name}_chat_template")] = TEMPLATES["gemma4_training"]


def training_chat_template(processor) -> str:
    """The template the collators train with: our training variant of a template shipped here, else TRL's training
    variant of the processor's template (or the template itself when TRL finds it fit). Raises, naming the fix, when
    that template's assistant mask would leave out the end-of-turn token."""
    template = processor.chat_template
    if isinstance(template, dict):
        template = template["default"]
    training = TRAINING.get(template) or get_training_chat_template(processor) or template
    if not is_chat_template_stop_token_trained(processor, chat_template=training):
        raise ValueError(
            f"The chat template of {type(processor).__name__} does not put the assistant's end-of-turn token inside "
            "its {% generation %} block, so a model trained with it would never learn to stop. Use a template whose "
            "generation block ends with the end-of-turn token (vlm_recipes/models/chat_templates/*_training.jinja)."
        )
    return training
