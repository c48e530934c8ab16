"""YAML -> typed, validated config. No TensorFlow in this package."""

from .load import dump_config, load_config
from .schema import Config

__all__ = ["Config", "dump_config", "load_config"]
