"""Grounding free text in a scene: which task family and which objects a typed line means, so that an
episode driven by any wording can still be graded. No synonym lists: the exact template forms parse
first; any other wording is compared, with the sentence encoder (all-MiniLM-L6-v2 embeddings), against
every instruction the scene's families could give here, and the nearest one is taken when it is close
enough. Below the threshold the text is "unsure" (the episode runs ungraded).

    grounder = Grounder()                                    # loads the encoder once
    g = grounder.ground("could you raise the red cube off the table", world)
    g.task, g.score, g.sure                                  # Task(pick, red cube), 0.83, True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embodied.envs import tasks
from embodied.envs.scene import Thing, World

THRESHOLD = 0.75  # cosine; chosen on 192 written paraphrases (experiments/grounding/README.md)


@dataclass
class Grounding:
    task: tasks.Task | None
    """The task the text was grounded to (None when nothing in the scene is close)."""
    score: float
    """Cosine similarity of the nearest scene instruction (1.0 for an exact template form)."""
    nearest: str
    """That instruction."""
    sure: bool
    """Whether the outcome can be graded: an exact form, or a paraphrase above the threshold."""
    absent: list[str]
    """Color-and-shape names in the text that nothing in the scene has (the answer lists what is there)."""


class Grounder:
    def __init__(self, embed=None, threshold: float = THRESHOLD):
        """embed(texts) -> (N, D) unit vectors; default: all-MiniLM-L6-v2 sentence embeddings."""
        self.embed = embed or sentence_embedder()
        self.threshold = threshold
        self._cache: dict[str, np.ndarray] = {}

    def ground(self, text: str, world: World) -> Grounding:
        clean = " ".join(text.strip().split())
        absent = absent_names(clean, world)
        try:
            task = tasks.parse_instruction(clean, world)
            return Grounding(task, 1.0, clean, True, absent)
        except tasks.InstructionError:
            pass
        options = scene_instructions(world)
        vectors = self._vectors([o[0] for o in options])
        query = self.embed([clean.lower()])[0]
        scores = vectors @ query
        best = int(np.argmax(scores))
        sentence, family, slots = options[best]
        task = tasks.Task(family, clean, slots.get("obj"), slots.get("target"), slots.get("dir"))
        score = float(scores[best])
        return Grounding(task if score >= self.threshold else None, score, sentence,
                         score >= self.threshold and not absent, absent)

    def _vectors(self, sentences: list[str]) -> np.ndarray:
        new = [s for s in sentences if s not in self._cache]
        if new:
            for s, v in zip(new, self.embed(new), strict=True):
                self._cache[s] = v
        return np.stack([self._cache[s] for s in sentences])


def scene_instructions(world: World) -> list[tuple[str, str, dict]]:
    """Every instruction a family's templates (train and held-out) could give in this scene."""
    out = []
    for family, spec in world.suite["families"].items():
        for slots in tasks.candidates(family, world):
            words = {k: tasks.describe(v, world.things) if isinstance(v, Thing) else v for k, v in slots.items()}
            for template in spec["templates"] + spec["heldout"]:
                out.append((template.format(**words), family, slots))
    return out


def absent_names(text: str, world: World) -> list[str]:
    """"color shape" pairs the text names (from the catalog's words) that no thing in the scene is."""
    catalog = world.catalog
    colors = set(catalog["colors"])
    shapes = set(catalog["shapes"]) | {"plate", "button"}
    words = [w.strip(".,!?;:'\"").lower() for w in text.split()]
    named = []
    for i, w in enumerate(words):
        if w in shapes:
            color = next((words[j] for j in range(i - 1, max(-1, i - 3), -1) if words[j] in colors), None)
            if color:
                named.append((color, w))
    return [f"{c} {s}" for c, s in named if not any(t.color == c and t.shape == s for t in world.things)]


def sentence_embedder():
    """all-MiniLM-L6-v2 sentence embeddings (mean of token states over the mask, unit length)."""
    import torch

    from embodied.policies.language import LanguageEncoder

    encoder = LanguageEncoder(max_tokens=48)

    @torch.no_grad()
    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), 64):
            batch = encoder.tokenizer(texts[i:i + 64], padding=True, truncation=True, max_length=48,
                                      return_tensors="pt")
            states = encoder.model(**batch).last_hidden_state
            mask = batch["attention_mask"][..., None].float()
            pooled = (states * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out)

    return embed
