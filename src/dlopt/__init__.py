"""dlopt: train Keras models from YAML experiment configs."""

__version__ = "0.1.0"

from .keras_objects import register_when_keras_loads

register_when_keras_loads()  # saved dlopt models load with a plain keras.models.load_model
