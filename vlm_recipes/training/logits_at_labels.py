"""Trainer mixin: the language-model head projects only the label positions (`logits_at_labels`, on by default).

TRL 1.16's SFT and DPO trainers give the model a fused head (`add_fused_lm_head`) that projects the label positions
only on CUDA / XPU with Triton, and every position elsewhere (CPU, MPS); `vlm_recipes.models.label_head` says what
that costs and what replaces it. This mixin, once TRL has built the trainer, puts the label-position head on the
trained model (under PEFT: the model inside the adapter wrapper, whose forward TRL patched) and on a separate
reference model, with the per-token outputs TRL's trainer reads. Everything TRL computes and logs from those outputs
(loss, entropy, mean_token_accuracy, DPO's rewards, logits/* means and WPO weights) keeps its meaning: the fields are
the same, zero at ignored positions as before. `logits_at_labels: false` leaves TRL's head as it is.
"""

from __future__ import annotations

import logging

from trl import DPOTrainer

from ..models.label_head import SFT_OUTPUTS, add_label_only_head, check_head

logger = logging.getLogger(__name__)


class LogitsAtLabels:
    """SFT / DPO trainer mixin: see the module docstring."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not getattr(self.args, "logits_at_labels", False):
            return
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        try:
            check_head(model)
        except ValueError as err:  # on by default where exact: elsewhere TRL's head stays, and the log says why
            logger.warning("%s; TRL's head is kept.", err)
            return
        add_label_only_head(model, outputs=self.label_head_outputs())
        if getattr(self, "ref_model", None) is not None:
            add_label_only_head(self.ref_model, outputs=("log_probs",))

    def label_head_outputs(self) -> tuple[str, ...]:
        """The per-token fields the trainer reads (those TRL's trainer asks of its own fused head)."""
        if isinstance(self, DPOTrainer):
            fields = ("log_probs", "entropy", "mean_logits", "is_top1")
            return fields + (("log_sum_sq_probs",) if self.use_weighting else ())
        return SFT_OUTPUTS
