"""Text-to-shape: caption-conditioned latent diffusion on channel-stacked tri-plane latents
(DDMI teaser "A curved chair", Text2Shape; ddmi_method.md §2 "Conditioning, text-to-shape").

The official code has no text encoder and a broken guidance branch, so this is our own wiring
of the pieces the reference names. A caption c is embedded by :class:`ddmi_lite.text.TextEncoder`
(trained from scratch, jointly with the denoiser); the UNet adds a projection of the embedding to
its time embedding, and a learned null embedding stands for "no caption". Training drops the
caption with probability ``p_uncond`` so one network learns both:

    L = E_{z~q(z|x), t, ε} ‖ε − ε̂(z_t, t, c̃)‖²,    c̃ = ∅ with probability p_uncond, else c.

Sampling uses classifier-free guidance (Ho & Salimans 2022):
ε̃ = (1 + w)·ε̂(z_t, t, c) − w·ε̂(z_t, t, ∅); w = 0 is the plain conditional model.
Latents are the shape VAE's tri-planes stacked along channels in the canonical order (xy, yz, xz).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ddmi_lite.diffusion import LatentDiffusion
from ddmi_lite.domains.shape import shape_ldm_config
from ddmi_lite.domains.shape_attributes import AttributeClassifierConfig
from ddmi_lite.errors import DDMIError
from ddmi_lite.ldm import MODEL_FIELDS, LDMConfig, model_fingerprint, resolve_latent_scale, step_postfix
from ddmi_lite.presets import preset
from ddmi_lite.schedule import Schedule
from ddmi_lite.text import ExternalTextEncoder, TextEncoder, Vocabulary
from ddmi_lite.train import load_or_train
from ddmi_lite.unet import UNet


@dataclass
class TextToShapeConfig:
    """Caption encoder, conditional denoiser, guidance sweep and evaluation sizes (notebook 07).

    The defaults are the ``cpu`` preset. The paper's text encoder is not known (reference §2); ours
    is a 2-layer Transformer over the captions' words, trained jointly with the denoiser. ``cpu``:
    1,000 steps of joint training (168 s with one thread), a 300-step attribute classifier, 100
    held-out captions × 4 guidance weights, and 8 held-out captions × 4 samples per weight for the
    diversity of samples that share a caption.
    """

    ldm: LDMConfig = field(default_factory=lambda: shape_ldm_config("cpu", train=dict(steps=1000, max_time_s=480.0)))
    text_dim: int = 64                    # width of the caption Transformer
    text_layers: int = 2
    text_heads: int = 4
    cond_dim: int = 64                    # caption embedding fed to the UNet
    max_len: int = 24                     # tokens kept per caption
    p_uncond: float = 0.2                 # caption dropped in training (classifier-free guidance)
    guidance: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)   # weights w of the sweep
    n_eval: int = 100                     # held-out captions (one shape each) scored per weight
    eval_resolution: int = 32             # occupancy grid of generated shapes (= classifier input)
    n_diversity: int = 8                  # held-out captions whose samples are compared with each other
    diversity_samples: int = 4            # samples per caption (and per guidance weight) for that comparison
    classifier: AttributeClassifierConfig = field(default_factory=AttributeClassifierConfig)


TEXT_TO_SHAPE_PRESETS = {
    "smoke": dict(ldm=shape_ldm_config("smoke"), text_dim=16, text_layers=1, text_heads=2, cond_dim=16,
                  guidance=(0.0, 2.0), n_eval=4, eval_resolution=16, n_diversity=2, diversity_samples=3,
                  classifier=dict(resolution=16, width=8, train=dict(steps=10, batch_size=8, warmup_steps=1,
                                                                     max_time_s=None))),
    "gpu": dict(ldm=shape_ldm_config("gpu"), text_dim=128, text_layers=3, cond_dim=128, n_eval=240, n_diversity=32,
                classifier=dict(train=dict(steps=3000, batch_size=64, max_time_s=None))),
}


def text_to_shape_config(profile: str = "cpu", **overrides) -> TextToShapeConfig:
    """The text-to-shape preset of ``profile`` (:mod:`ddmi_lite.presets`), with ``overrides``."""
    return preset(TextToShapeConfig, profile, TEXT_TO_SHAPE_PRESETS, **overrides)


class TextConditionedLDM(nn.Module):
    """A :class:`LatentDiffusion` whose UNet takes a caption embedding, and the caption encoder."""

    def __init__(self, ldm: LatentDiffusion, text: TextEncoder | ExternalTextEncoder):
        super().__init__()
        if getattr(ldm.net, "cond_dim", None) != text.out_dim:
            raise DDMIError(f"the UNet's cond_dim={getattr(ldm.net, 'cond_dim', None)} must equal the text "
                            f"encoder's out_dim={text.out_dim}")
        self.ldm, self.text = ldm, text

    def loss(self, z: torch.Tensor, captions: list[str], *, p_uncond: float = 0.2) -> tuple[torch.Tensor, dict]:
        """ε-MSE with the caption embedding as condition, dropped with probability ``p_uncond``."""
        if len(captions) != len(z):
            raise DDMIError(f"{len(captions)} captions for {len(z)} latents")
        return self.ldm.loss(z, self.text.embed(captions), p_uncond=p_uncond)

    @torch.no_grad()
    def sample(self, captions: list[str] | None = None, *, n: int | None = None, guidance: float = 0.0,
               sampler: str = "ddim", steps: int = 50, generator: torch.Generator | None = None,
               latent_shape=None, batch_size: int = 256, progress: bool = True) -> torch.Tensor:
        """Latents (VAE units, CPU) ``[n, C, h, w]`` for ``captions`` — or ``n`` unconditional ones when None.

        ``progress``: a tqdm bar counting the latents, with the sampler step beside it.
        """
        if captions is None and (n is None or n < 1):
            raise DDMIError("give captions, or n >= 1 for unconditional samples")
        shape = tuple(latent_shape) if latent_shape is not None else (self.ldm.channels, self.ldm.net.image_size,
                                                                      self.ldm.net.image_size)
        total = len(captions) if captions is not None else int(n)
        out = []
        what = "unconditional" if captions is None else f"captioned, w={guidance:g}"
        with tqdm(total=total, desc=f"sampling latents ({what}, {sampler}, {steps} steps)", unit="latent",
                  leave=False, disable=not progress) as bar:
            for b, start in enumerate(range(0, total, batch_size)):
                count = min(batch_size, total - start)
                cond = None if captions is None else self.text.embed(captions[start:start + count])
                z = self.ldm.sample((count, *shape), sampler=sampler, steps=steps, cond=cond, guidance=guidance,
                                    generator=generator, callback=step_postfix(bar, b) if progress else None)
                out.append(z.float().cpu())  # [count, C, h, w]
                bar.update(count)
        return torch.cat(out)


def build_text_ldm(cfg: TextToShapeConfig, latent_shape, vocab: Vocabulary, *, latent_scale: float = 1.0,
                   text: TextEncoder | ExternalTextEncoder | None = None) -> TextConditionedLDM:
    """Caption encoder (``vocab``, or an external ``text`` encoder) + UNet(cond_dim) in a mixed-prediction LDM."""
    channels, h, w = (int(s) for s in latent_shape)
    text = text if text is not None else TextEncoder(vocab, dim=cfg.text_dim, out_dim=cfg.cond_dim,
                                                     layers=cfg.text_layers, heads=cfg.text_heads, max_len=cfg.max_len)
    lc = cfg.ldm
    net = UNet(channels, model_channels=lc.model_channels, channel_mult=lc.channel_mult,
               num_res_blocks=lc.num_res_blocks, attention_resolutions=lc.attention_resolutions,
               num_heads=lc.num_heads, dropout=lc.dropout, image_size=min(h, w), cond_dim=text.out_dim)
    ldm = LatentDiffusion(net, schedule=Schedule(num_timesteps=lc.num_timesteps), mixed_init=lc.mixed_init,
                          latent_scale=latent_scale)
    return TextConditionedLDM(ldm, text)


def _caption_picker(captions: list[list[str]]):
    """One caption per object, drawn uniformly among its captions ("" for an object without one)."""
    def pick(index: torch.Tensor, generator: torch.Generator) -> list[str]:
        out = []
        for i in index.tolist():
            options = captions[i]
            out.append(options[int(torch.randint(0, len(options), (1,), generator=generator))] if options else "")
        return out
    return pick


def train_text_ldm(model: TextConditionedLDM, posterior, captions: list[list[str]], cfg: TextToShapeConfig, *,
                   device="cpu", ckpt_path=None, seed: int = 0, progress: bool = True, run_config: dict | None = None):
    """Joint training of the caption encoder and the conditional denoiser on posterior samples z ~ q(z|x)."""
    if len(captions) != len(posterior):
        raise DDMIError(f"{len(captions)} caption lists for {len(posterior)} latents")
    lc, n = cfg.ldm, len(posterior)
    tcfg = dataclasses.replace(lc.train, seed=seed, ema_start=lc.train.warmup_steps)
    pick = _caption_picker(captions)

    def batch_fn(step: int, generator: torch.Generator) -> dict:
        index = torch.randint(0, n, (tcfg.batch_size,), generator=generator)
        return {"z": posterior.sample(index, generator), "captions": pick(index, generator)}

    def loss_fn(m: TextConditionedLDM, batch: dict, step: int):
        return m.loss(batch["z"], batch["captions"], p_uncond=cfg.p_uncond)

    groups = model.ldm.param_groups(tcfg.lr, mix_lr=lc.mix_lr, weight_decay=tcfg.weight_decay)
    groups[0]["params"] = groups[0]["params"] + list(model.text.parameters())
    evaluation_only = ("guidance", "n_eval", "eval_resolution", "n_diversity", "diversity_samples", "classifier", "ldm")
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in evaluation_only}
    settings["ldm"] = {k: getattr(lc, k) for k in MODEL_FIELDS}
    config = {"text_to_shape": settings, "latent_shape": list(posterior.shape),
              "latent_scale_value": model.ldm.latent_scale, **(run_config or {})}
    return load_or_train(model, loss_fn, batch_fn, tcfg, ckpt_path=ckpt_path, run_config=config, device=device,
                         params=groups, progress=progress, desc="text-to-shape diffusion")


def load_or_train_text_ldm(vae, posterior, captions: list[list[str]], cfg: TextToShapeConfig, *, ckpt_path,
                           device="cpu", seed: int = 0, progress: bool = True):
    """Build (vocabulary from the training captions), then train or reuse the checkpoint at ``ckpt_path``.

    A checkpoint of another VAE (weights fingerprint), vocabulary or config is not resumed but
    trained afresh (:func:`ddmi_lite.train.load_or_train`). Returns the EMA model (or the model) in
    eval mode and the ``TrainResult``.
    """
    vocab = Vocabulary.from_captions([c for caps in captions for c in caps])
    scale = resolve_latent_scale(cfg.ldm, posterior)
    model = build_text_ldm(cfg, posterior.shape, vocab, latent_scale=scale)
    run = {"vae_fingerprint": model_fingerprint(vae), "vocabulary": vocab.words}
    result = train_text_ldm(model, posterior, captions, cfg, device=device, ckpt_path=ckpt_path, seed=seed,
                            progress=progress, run_config=run)
    trained = result.ema.model if result.ema is not None else model
    return trained.eval(), result


__all__ = ["TextToShapeConfig", "TEXT_TO_SHAPE_PRESETS", "text_to_shape_config", "TextConditionedLDM", "build_text_ldm", "train_text_ldm", "load_or_train_text_ldm"]
