"""Presets: every config dataclass's defaults are its ``cpu`` preset; a table says what smoke / gpu change."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from ddmi_lite.ablations import AblationConfig, ablation_config
from ddmi_lite.domains.image import ImageVAEConfig, image_ldm_config, image_vae_config
from ddmi_lite.domains.nerf import NeRFEvalConfig, NeRFVAEConfig, nerf_eval_config, nerf_ldm_config, nerf_vae_config
from ddmi_lite.domains.shape import (ShapeEvalConfig, ShapeVAEConfig, shape_eval_config, shape_ldm_config,
                                     shape_vae_config)
from ddmi_lite.domains.shape_attributes import AttributeClassifierConfig
from ddmi_lite.domains.text_to_shape import TextToShapeConfig, text_to_shape_config
from ddmi_lite.domains.video import VideoEvalConfig, VideoVAEConfig, video_eval_config, video_ldm_config, video_vae_config
from ddmi_lite.errors import DDMIError
from ddmi_lite.ldm import LDMConfig
from ddmi_lite.presets import PROFILES, check_profile, override, preset
from ddmi_lite.train import TrainConfig


# ----------------------------------------------------------------------------- the mechanism
@dataclass
class _Inner:
    a: int = 1
    b: int = 2


@dataclass
class _Outer:
    x: int = 0
    y: int = 0
    table: dict = field(default_factory=lambda: {"k": 1})
    inner: _Inner = field(default_factory=_Inner)


def test_override_reaches_nested_fields_with_a_dict():
    cfg = image_vae_config("cpu")
    changed = override(cfg, hidden=48, train=dict(steps=5, max_time_s=None))
    assert changed.hidden == 48 and changed.train.steps == 5 and changed.train.max_time_s is None
    # only the named nested fields change: the rest of the nested config is kept
    assert changed.train == dataclasses.replace(cfg.train, steps=5, max_time_s=None)
    assert changed.net == cfg.net and changed.resolution == cfg.resolution
    # the original is not modified, and two levels deep works the same way
    assert cfg.train.steps == ImageVAEConfig().train.steps and cfg.hidden == ImageVAEConfig().hidden
    deep = override(ablation_config("cpu"), image=dict(train=dict(steps=3)))
    assert deep.image.train.steps == 3 and deep.image.train.lr == ablation_config("cpu").image.train.lr
    # the same as dataclasses.replace on the nested config
    assert override(cfg, train=dict(steps=5)) == dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=5))


def test_override_replaces_with_an_instance_and_plain_dict_fields_whole():
    cfg = image_vae_config("cpu")
    given = TrainConfig(steps=7)
    changed = override(cfg, train=given)
    assert changed.train == given and changed.train.lr == TrainConfig().lr != cfg.train.lr  # nothing merged
    ldm = image_ldm_config("cpu")
    assert override(ldm, sweep={"ddim": (5,)}).sweep == {"ddim": (5,)}  # a dict field is not a config
    assert override(_Outer(), table={"z": 2}).table == {"z": 2}


def test_override_refuses_an_unknown_name_listing_the_fields():
    cfg = image_vae_config("cpu")
    with pytest.raises(DDMIError, match="ImageVAEConfig has no field 'stepz'") as info:
        override(cfg, stepz=3)
    for name in (f.name for f in dataclasses.fields(ImageVAEConfig)):
        assert name in str(info.value)
    with pytest.raises(DDMIError, match="TrainConfig has no field 'stepz'.*batch_size"):
        override(cfg, train=dict(stepz=3))  # inside a nested config too
    with pytest.raises(DDMIError, match="not_a_field"):
        image_vae_config("cpu", not_a_field=1)  # the preset functions go through override
    with pytest.raises(DDMIError, match="config dataclass instance"):
        override(ImageVAEConfig, hidden=1)  # the class, not an instance


def test_preset_applies_the_cpu_row_then_the_profile_row_then_overrides():
    table = {"cpu": dict(x=1, inner=dict(a=10)), "smoke": dict(y=2, inner=dict(b=20)), "gpu": dict(x=3)}
    assert preset(_Outer, "cpu", table) == _Outer(x=1, inner=_Inner(a=10))
    assert preset(_Outer, "smoke", table) == _Outer(x=1, y=2, inner=_Inner(a=10, b=20))  # cpu row kept
    assert preset(_Outer, "gpu", table) == _Outer(x=3, inner=_Inner(a=10))  # the profile row wins
    assert preset(_Outer, "gpu", table, x=5, inner=dict(b=7)) == _Outer(x=5, inner=_Inner(a=10, b=7))
    # without a cpu row the dataclass defaults are the cpu preset
    assert preset(_Outer, "cpu", {"smoke": dict(x=9)}) == _Outer()
    assert preset(_Outer, "smoke", {"smoke": dict(x=9)}) == _Outer(x=9)
    with pytest.raises(DDMIError, match="_Outer has no field 'w'"):
        preset(_Outer, "smoke", {"smoke": dict(w=1)})


def test_check_profile_names_the_allowed_ones():
    assert PROFILES == ("smoke", "cpu", "gpu")
    for profile in PROFILES:
        assert check_profile(profile) == profile
    with pytest.raises(DDMIError, match="laptop") as info:
        check_profile("laptop")
    assert all(p in str(info.value) for p in PROFILES)
    with pytest.raises(DDMIError, match="laptop"):
        preset(_Outer, "laptop", {})
    with pytest.raises(DDMIError, match="fast"):
        image_vae_config("fast")


# ----------------------------------------------------------------------------- the preset functions
def _train_steps(cfg) -> int:
    return cfg.train.steps


# (preset function, its dataclass when the dataclass defaults are that function's cpu preset, else None,
#  how to read the training steps of a config when it trains something)
PRESET_FUNCTIONS = {
    "image_vae": (image_vae_config, ImageVAEConfig, _train_steps),
    "shape_vae": (shape_vae_config, ShapeVAEConfig, _train_steps),
    "video_vae": (video_vae_config, VideoVAEConfig, _train_steps),
    "nerf_vae": (nerf_vae_config, NeRFVAEConfig, _train_steps),
    "image_ldm": (image_ldm_config, LDMConfig, _train_steps),
    "shape_ldm": (shape_ldm_config, None, _train_steps),
    "video_ldm": (video_ldm_config, None, _train_steps),
    "nerf_ldm": (nerf_ldm_config, None, _train_steps),
    "shape_eval": (shape_eval_config, ShapeEvalConfig, None),
    "video_eval": (video_eval_config, VideoEvalConfig, None),
    "nerf_eval": (nerf_eval_config, NeRFEvalConfig, None),
    "text_to_shape": (text_to_shape_config, TextToShapeConfig, lambda cfg: cfg.ldm.train.steps),
    "ablation": (ablation_config, AblationConfig, lambda cfg: cfg.image.train.steps),
}


@pytest.mark.parametrize("name", list(PRESET_FUNCTIONS))
def test_every_profile_builds_and_cpu_is_the_dataclass_defaults(name):
    fn, cls, steps = PRESET_FUNCTIONS[name]
    built = {profile: fn(profile) for profile in PROFILES}
    kind = type(built["cpu"])
    assert all(type(cfg) is kind for cfg in built.values())
    assert fn() == built["cpu"]  # cpu is the default profile
    if cls is not None:
        assert built["cpu"] == cls(), f"{name}: the {cls.__name__} defaults are not its cpu preset"
    else:  # a shared dataclass (LDMConfig): the domain's table starts with its own cpu row
        assert built["cpu"] != LDMConfig()
    assert built["smoke"] != built["cpu"] != built["gpu"]
    if steps is not None:  # smoke trains for seconds, gpu for longer than cpu
        assert steps(built["smoke"]) < steps(built["cpu"]) < steps(built["gpu"])
    # an override reaches the built config, and only it
    first = dataclasses.fields(kind)[0].name
    value = getattr(built["cpu"], first)
    assert getattr(fn("cpu", **{first: value}), first) == value
    if hasattr(built["cpu"], "train"):
        assert fn("smoke", train=dict(steps=1)).train.steps == 1
        assert fn("smoke", train=dict(steps=1)).train.lr == built["smoke"].train.lr


def test_classifier_and_nested_defaults_are_their_cpu_presets():
    t2s = text_to_shape_config("cpu")
    assert t2s.classifier == AttributeClassifierConfig()
    assert t2s.ldm == shape_ldm_config("cpu", train=dict(steps=t2s.ldm.train.steps, max_time_s=t2s.ldm.train.max_time_s))
    assert text_to_shape_config("smoke").classifier.train.steps < AttributeClassifierConfig().train.steps
    assert text_to_shape_config("smoke").ldm == shape_ldm_config("smoke")
    # the ablation rows' nets are built from the domain presets
    abl = AblationConfig()
    assert abl.shape.data_root == shape_vae_config("cpu").data_root
    assert abl.image_ldm.train.steps < image_ldm_config("cpu").train.steps
