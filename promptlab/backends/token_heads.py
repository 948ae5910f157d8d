"""Token-classification heads for causal LMs that transformers gives none: Gemma 3 (text-only).

gemma-3-270m reads Chinese, but transformers has no Gemma3 token-classification class. This one is
transformers' own generic head (a linear layer on the last hidden states, as for Llama and Qwen),
registered with AutoModelForTokenClassification, so loading, saving and reloading work as for any other.
"""
from __future__ import annotations

from transformers import AutoModelForTokenClassification, Gemma3TextConfig
from transformers.modeling_layers import GenericForTokenClassification
from transformers.models.gemma3.modeling_gemma3 import Gemma3PreTrainedModel


class Gemma3TextForTokenClassification(GenericForTokenClassification, Gemma3PreTrainedModel):
    config_class = Gemma3TextConfig
    input_modalities = ("text",)


def register_token_heads() -> None:
    AutoModelForTokenClassification.register(Gemma3TextConfig, Gemma3TextForTokenClassification, exist_ok=True)
