"""Generate clips with the shipped model from Python, including an image-to-video call.

    .venv/bin/python examples/video/generate.py out/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from fivefold.video import generate, load_pipeline, save_grid, save_video


def main(out: Path) -> None:
    torch.set_num_threads(2)
    pipe = load_pipeline()
    prompts = ["a red circle moving left", "a yellow triangle moving down"]
    clips = generate(pipe, prompts, frames=9, height=32, width=32, steps=25, cfg=4.0, seed=0)
    save_video(out / "text_to_video.gif", clips, upscale=4)
    # image-to-video: keep frame 0 of the first clip, let the model continue it
    known = torch.zeros(1, 9, dtype=torch.bool)
    known[:, 0] = True
    animated = generate(pipe, prompts[:1], 9, 32, 32, known_video=clips[:1], known_frames=known, seed=1)
    save_grid(out / "image_to_video.png", torch.cat([clips[:1], animated]), upscale=4)
    print(f"wrote {out / 'text_to_video.gif'} and {out / 'image_to_video.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "video-example"))
