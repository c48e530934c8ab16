"""`data.augment`: the augmentation operations, one class per `type`, applied in the listed order.

Image operations take batches of (height, width, channels) inputs, sequence operations batches of
(time, features); `gaussian_noise` and `mixup` take either. Parameters are in the units of the raw inputs
(before `data.preprocess`), whose range `value_range` gives: unset, [0, 255] for 8-bit data and
[0, 1] otherwise.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, model_validator

from .schema_base import Fraction, PositiveFloat, PositiveInt, Section, field_error

FillMode = Literal["constant", "reflect", "wrap", "nearest"]
FILL_MODE = "How pixels moved in from outside the image are filled: `constant` (zeros), `reflect`, `wrap`, `nearest`."
ValueRange = Optional[Annotated[list[float], Field(min_length=2, max_length=2)]]
VALUE_RANGE = "[low, high] of the raw input values (unset: [0, 255] for 8-bit data, [0, 1] otherwise)."
TypeField = Field(
    ...,
    description=(
        "Operation. Images: `random_flip`, `random_rotation`, `random_zoom`, `random_translation`, `random_crop`, "
        "`random_contrast`, `random_brightness`, `random_erasing`, `cutmix`. Sequences: `scaling`, `time_masking`. "
        "Any float inputs: `gaussian_noise`, `mixup`. `mixup` and `cutmix` mix labels too (classification only)."
    ),
)


class RandomFlip(Section):
    type: Literal["random_flip"] = TypeField
    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = Field("horizontal", description="Flip direction (`random_flip`); each image is flipped with probability 1/2.")


class RandomRotation(Section):
    type: Literal["random_rotation"]
    factor: Annotated[float, Field(gt=0, le=0.5)] = Field(
        0.05, description="Strength: rotation up to ±factor × 360° (`random_rotation`), zoom in or out by up to factor (`random_zoom`), contrast scaled by 1 ± factor (`random_contrast`), brightness shifted by up to ±factor of the value range (`random_brightness`)."
    )
    fill_mode: FillMode = Field("constant", description=FILL_MODE)


class RandomZoom(Section):
    type: Literal["random_zoom"]
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.1
    fill_mode: FillMode = "constant"


class RandomTranslation(Section):
    type: Literal["random_translation"]
    height: Fraction = Field(0.1, description="Largest vertical shift as a fraction of the height (`random_translation`).")
    width: Fraction = Field(0.1, description="Largest horizontal shift as a fraction of the width (`random_translation`).")
    fill_mode: FillMode = "constant"


class RandomCrop(Section):
    type: Literal["random_crop"]
    padding: Annotated[int, Field(ge=0)] = Field(4, description="Pad each side with this many zero pixels, then crop a random window of the original size (`random_crop`).")


class RandomContrast(Section):
    type: Literal["random_contrast"]
    factor: Annotated[float, Field(gt=0, le=1)] = 0.2
    value_range: ValueRange = Field(None, description=VALUE_RANGE)


class RandomBrightness(Section):
    type: Literal["random_brightness"]
    factor: Annotated[float, Field(gt=0, le=1)] = 0.2
    value_range: ValueRange = None


class GaussianNoise(Section):
    type: Literal["gaussian_noise"]
    stddev: PositiveFloat = Field(0.05, description="Noise standard deviation as a fraction of the value range (`gaussian_noise`).")
    value_range: ValueRange = None


class RandomErasing(Section):
    type: Literal["random_erasing"]
    probability: Annotated[float, Field(gt=0, le=1)] = Field(0.5, description="Chance that an image gets a rectangle erased (`random_erasing`).")
    scale: Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=2, max_length=2)] = Field(
        [0.02, 0.33], description="[min, max] area of the erased rectangle as a fraction of the image (`random_erasing`)."
    )
    value: Optional[float] = Field(None, description="Fill value: of the erased rectangle (`random_erasing`; unset: random noise), of masked time steps (`time_masking`).")
    value_range: ValueRange = None

    @model_validator(mode="after")
    def _ordered(self):
        if self.scale[0] > self.scale[1]:
            raise field_error("scale", f"expected [min, max] with min <= max, got {self.scale}")
        return self


class Mixup(Section):
    type: Literal["mixup"]
    alpha: PositiveFloat = Field(
        0.2, description="Beta(alpha, alpha) draws the mixing weight of two examples and their labels (`mixup`), or the share of an image replaced by a box from another, labels mixed by the box's exact area (`cutmix`; 1.0: uniform)."
    )


class Cutmix(Section):
    type: Literal["cutmix"]
    alpha: PositiveFloat = 1.0


class Scaling(Section):
    type: Literal["scaling"]
    sigma: PositiveFloat = Field(0.1, description="Each example's features are multiplied by factors drawn from N(1, sigma) (`scaling`).")


class TimeMasking(Section):
    type: Literal["time_masking"]
    max_fraction: Annotated[float, Field(gt=0, le=1)] = Field(0.1, description="Longest masked span as a fraction of the time steps (`time_masking`).")
    count: PositiveInt = Field(1, description="Masked spans per example (`time_masking`).")
    value: float = 0.0


AugmentOp = Annotated[
    Union[
        RandomFlip, RandomRotation, RandomZoom, RandomTranslation, RandomCrop, RandomContrast, RandomBrightness,
        GaussianNoise, RandomErasing, Mixup, Cutmix, Scaling, TimeMasking,
    ],
    Field(discriminator="type"),
]
IMAGE_OPS = {"random_flip", "random_rotation", "random_zoom", "random_translation", "random_crop", "random_contrast", "random_brightness", "random_erasing", "cutmix"}
SEQUENCE_OPS = {"scaling", "time_masking"}
LABEL_MIXING_OPS = {"mixup", "cutmix"}
