"""Time reversal: backward extension as forward extension of the reversed clip.

The causal VAE makes the two ends of a window unequal. At the start, the first latent frame is one
pixel frame encoded on its own (an image latent), which the DiT learned to continue from; at the end,
a known latent frame is encoded after frames the model has not generated yet, so what it holds
depends on a guess. Generating what came *before* a clip is therefore done the other way round:
reverse the clip, extend it forward, reverse the result. Played backwards, an object moving left
moves right, so the prompt's motion words are swapped too (:func:`reverse_motion`).
"""

from __future__ import annotations

import re

# Each word and its opposite under time reversal; both directions are added below. Words relative to
# a place ("towards", "away from") are left alone: "towards the left edge" reverses by its "left".
_OPPOSITES = {
    "left": "right",
    "leftward": "rightward",
    "leftwards": "rightwards",
    "up": "down",
    "upward": "downward",
    "upwards": "downwards",
    "top": "bottom",
    "rising": "falling",
    "rises": "falls",
    "ascending": "descending",
    "forward": "backward",
    "forwards": "backwards",
}
_SWAP = {**_OPPOSITES, **{v: k for k, v in _OPPOSITES.items()}}
_PATTERN = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in _SWAP) + r")\b",
    re.IGNORECASE,
)


def _same_case(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def reverse_motion(prompt: str) -> str:
    """The prompt for the same scene played backwards: motion words swapped for their opposites
    ("moving left" -> "moving right", "upwards" -> "downwards"), everything else unchanged."""
    return _PATTERN.sub(lambda m: _same_case(_SWAP[m.group(0).lower()], m.group(0)), prompt)
