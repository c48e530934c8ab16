"""dlopt: train Keras models from YAML experiment configs."""

__version__ = "0.1.0"
