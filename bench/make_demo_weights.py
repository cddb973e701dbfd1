"""Train the bundled demo weights (``sam2unext/weights/demo.safetensors``).

The tiny ``sam2unext-test`` preset is trained from scratch on random crops of procedural demo
scenes (:mod:`sam2unext.geo.demo.demo_scene`), on CPU, within a time budget. The scenes used here have
different seeds from the scene that ``sam2unext-geo demo`` draws, so the demo measures the
weights on a scene they have not seen.

Rerun (about 15-20 minutes on 2 CPU cores)::

    python bench/make_demo_weights.py --minutes 15

Writes the checkpoint (with the model core's ``save_checkpoint``) and a JSON note of how it
was trained next to it (``demo.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from sam2unext import build_model, deep_supervision_loss, load_model, save_checkpoint
from sam2unext.geo.demo.demo_run import mask_iou
from sam2unext.geo.demo.demo_scene import DEMO_SEED, generate_scene
from sam2unext.transforms import normalize

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "sam2unext" / "weights"


def make_scenes(n: int, size: int, first_seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Draw ``n`` training scenes as ``(image uint8 [3,H,W], truth uint8 [H,W])`` pairs."""
    scenes = []
    for k in range(n):
        seed = first_seed + k
        assert seed != DEMO_SEED, "training scenes must not include the demo scene"
        s = generate_scene(size, seed=seed)
        scenes.append((s.image, s.truth))
    return scenes


def sample_batch(scenes, batch: int, crop: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops with random flips and 90-degree rotations.

    Returns:
        ``(image float [B,3,crop,crop] in [0,1], mask float [B,1,crop,crop])``.
    """
    images, masks = [], []
    for _ in range(batch):
        img, truth = scenes[int(rng.integers(len(scenes)))]
        h, w = truth.shape
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        im = img[:, y : y + crop, x : x + crop]
        m = truth[None, y : y + crop, x : x + crop]
        k = int(rng.integers(4))
        im, m = np.rot90(im, k, axes=(1, 2)), np.rot90(m, k, axes=(1, 2))
        if rng.random() < 0.5:
            im, m = im[:, :, ::-1], m[:, :, ::-1]
        images.append(np.ascontiguousarray(im))
        masks.append(np.ascontiguousarray(m))
    image = torch.from_numpy(np.stack(images)).float() / 255.0
    # Mild photometric jitter so the weights do not key on exact colours.
    gain = torch.empty(batch, 1, 1, 1).uniform_(0.9, 1.1)
    bias = torch.empty(batch, 1, 1, 1).uniform_(-0.04, 0.04)
    image = (image * gain + bias).clamp(0, 1)
    return image, torch.from_numpy(np.stack(masks)).float()


@torch.inference_mode()
def crop_iou(model, scenes, crop: int, n: int, seed: int) -> float:
    """IoU over ``n`` held-out random crops, pooled (threshold 0.5)."""
    model.eval()
    rng = np.random.default_rng(seed)
    image, mask = sample_batch(scenes, n, crop, rng)
    preds = []
    for i in range(0, n, 8):
        preds.append(model.predict(image[i : i + 8]) > 0.5)
    model.train()
    return mask_iou(torch.cat(preds).numpy(), mask.numpy() > 0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="sam2unext-test")
    parser.add_argument("--minutes", type=float, default=15.0, help="training time budget")
    parser.add_argument("--scenes", type=int, default=8, help="number of training scenes")
    parser.add_argument("--scene-size", type=int, default=1536)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        help="continue from this checkpoint (e.g. a previous run) instead of random weights",
    )
    parser.add_argument("--output", type=Path, default=WEIGHTS_DIR / "demo.safetensors")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    t0 = time.time()
    train_scenes = make_scenes(args.scenes, args.scene_size, first_seed=100)
    val_scenes = make_scenes(1, args.scene_size, first_seed=900)
    print(f"drew {len(train_scenes)} training scenes of {args.scene_size}px in {time.time() - t0:.0f}s", flush=True)

    if args.init is not None:
        model = load_model(args.init, device="cpu")
        previous = dict(getattr(model, "extra", {}) or {})
    else:
        model = build_model(args.preset)
        previous = {}
    model.train()
    crop = model.input_size
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"preset {args.preset}: {n_params / 1e6:.2f} M parameters, input {crop}, low-res {model.low_res_size}",
        flush=True,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)

    budget = args.minutes * 60.0
    start = time.time()
    step, total_steps, losses = 0, None, []
    while True:
        elapsed = time.time() - start
        if total_steps is None and step == 20:
            # Fix the schedule length from the measured step time.
            total_steps = max(40, int(budget / (elapsed / step)))
            print(f"{elapsed / step:.2f}s/step -> {total_steps} steps", flush=True)
        if total_steps is not None and step >= total_steps:
            break
        horizon = total_steps or 10**9
        warm = min(1.0, (step + 1) / 50)
        lr = args.lr * warm * 0.5 * (1 + math.cos(math.pi * min(1.0, step / horizon)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        image, mask = sample_batch(train_scenes, args.batch, crop, rng)
        loss = deep_supervision_loss(model(normalize(image)), mask, bce="weighted")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss))
        step += 1
        if step % 50 == 0:
            print(
                f"step {step}/{total_steps} loss {np.mean(losses[-50:]):.4f} lr {lr:.2e} {time.time() - start:.0f}s",
                flush=True,
            )
        if step % 100 == 0:
            print(f"  held-out crop IoU {crop_iou(model, val_scenes, crop, 32, seed=1):.4f}", flush=True)

    seconds = time.time() - start
    model.eval()
    val_iou = crop_iou(model, val_scenes, crop, 64, seed=2)
    print(f"trained {step} steps in {seconds / 60:.1f} min; held-out crop IoU {val_iou:.4f}", flush=True)

    note = {
        "preset": args.preset,
        "task": "demo",
        "trained_on": "procedural synthetic scenes only (sam2unext.geo.demo.demo_scene); knows nothing of real imagery",
        "script": "bench/make_demo_weights.py",
        "command": "python bench/make_demo_weights.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "output" and v is not None),
        "continued_from": previous or None,
        "training_scenes": {"count": args.scenes, "size": args.scene_size, "seeds": [100, 100 + args.scenes - 1]},
        "held_out_scene_seed": 900,
        "steps": step,
        "batch": args.batch,
        "crop": crop,
        "optimizer": f"AdamW lr {args.lr} cosine, weight decay 1e-4, 50 warm-up steps",
        "loss": "deep_supervision_loss (structure loss, bce=weighted)",
        "final_loss_mean_last_100": float(np.mean(losses[-100:])),
        "held_out_crop_iou": val_iou,
        "minutes": round(seconds / 60, 1),
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} CPU threads, "
        f"torch {torch.__version__}",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, args.output, task="demo", extra=note)
    args.output.with_suffix(".json").write_text(json.dumps(note, indent=2) + "\n")
    size_mb = args.output.stat().st_size / 1e6
    print(f"wrote {args.output} ({size_mb:.2f} MB) and {args.output.with_suffix('.json')}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
