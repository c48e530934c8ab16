"""What every config section shares: unknown keys are errors, and errors name their key."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, ClassVar, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from ..registry import did_you_mean

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]


def field_error(key: str, message: str) -> PydanticCustomError:
    """An error about one key of the section being validated; the loader adds the key to the path."""
    return PydanticCustomError("dlopt_field", "{message}", {"key": key, "message": message})


class Section(BaseModel):
    """Base of every section: unknown keys are errors, with a suggestion for misspelt ones."""

    # strict: `epochs: true` is no 1 and `batch_size: "32"` no 32; a config says what it means
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)
    # a section tagged by `type` names what it builds: "module:attribute", imported when built
    builds: ClassVar[Optional[str]] = None

    def builder(self):
        """What this section builds (a model builder, a Keras optimizer class, a schedule maker)."""
        from ..registry import load_attribute

        return load_attribute(self.builds)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields)
            for key in data:
                if key not in known:
                    hint = did_you_mean(key, known) or f" (expected one of: {', '.join(sorted(known))})"
                    raise field_error(str(key), f"unknown key '{key}'{hint}")
        return data


def sections_in(annotation) -> tuple[list[type], bool]:
    """Section classes inside an annotation (unions, Optional, Annotated, list[...]); and whether a list."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return sections_in(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        found, is_list = [], False
        for arg in typing.get_args(annotation):
            sub, sub_list = sections_in(arg)
            found += [s for s in sub if s not in found]
            is_list = is_list or sub_list
        return found, is_list
    if origin is list:
        return sections_in(typing.get_args(annotation)[0])[0], True
    if origin is dict:  # keyed by the user's names (search.params): the values' sections
        return sections_in(typing.get_args(annotation)[1])
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return [annotation], False
    return [], False
