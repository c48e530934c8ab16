"""A request's instances as the model's inputs, each checked against the model's signature; what
does not fit is a BadRequest (answered 400 with one line), never a server error."""

from __future__ import annotations

import base64

import numpy as np

from ..data.table_rows import image_inputs


class BadRequest(ValueError):
    """The request cannot be answered as it is: 400, with this one-line reason."""


def instances_of(body) -> list:
    """TF Serving's row format `{"instances": [...]}` or columnar `{"inputs": ...}`, as a list."""
    if not isinstance(body, dict) or not ({"instances", "inputs"} & set(body)):
        raise BadRequest('expected a JSON object with "instances" (a list, one per example) or "inputs"')
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadRequest('"instances" must be a non-empty list')
        return instances
    inputs = body["inputs"]
    if isinstance(inputs, dict):  # columnar: {column: [values...]}
        lengths = {len(v) if isinstance(v, list) else -1 for v in inputs.values()}
        if len(lengths) != 1 or -1 in lengths or 0 in lengths:
            raise BadRequest('"inputs" as columns must map each name to a list, all of one length')
        (n,) = lengths
        return [{name: values[i] for name, values in inputs.items()} for i in range(n)]
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest('"inputs" must be a non-empty list')
    return inputs


class Signature:
    """What the model takes: one array input (images, sequences, features), text, or table columns."""

    def __init__(self, model, table: bool = False, image_reader=None):
        self.inputs = {t.name: (tuple(t.shape[1:]), str(t.dtype)) for t in model.inputs}
        self.table = table or len(model.inputs) > 1  # as `dlopt predict` tells a table model
        first = model.inputs[0]
        self.shape, self.dtype = tuple(first.shape[1:]), str(first.dtype)
        self.text = self.dtype == "string" and not self.table
        self.image_reader = image_reader
        self.image_paths = image_inputs(model) if self.table else []  # table columns of image file paths

    def describe(self) -> dict:
        return {name: {"shape": [None, *shape], "dtype": dtype} for name, (shape, dtype) in self.inputs.items()}

    def example(self, instance):
        """One instance as the model takes it (a row dict for tables, a string, or an array)."""
        if self.table:
            if not isinstance(instance, dict):
                raise BadRequest(f"this model takes table rows: JSON objects of column: value, got {type(instance).__name__}")
            return instance
        if self.text:
            if not isinstance(instance, str):
                raise BadRequest(f"this model takes text: a string per instance, got {type(instance).__name__}")
            return instance
        if isinstance(instance, dict) and set(instance) == {"b64"}:
            return self._image(instance["b64"])
        if isinstance(instance, bytes):  # an image file's bytes, as MLflow decodes {"b64": ...}
            return self.image_reader(instance)
        try:
            array = np.asarray(instance, dtype=np.float32)
        except (TypeError, ValueError):
            raise BadRequest(f"expected an array of shape {list(self.shape)} (numbers) or {{\"b64\": <an image file, base64>}}") from None
        if self.shape and self.shape[-1] == 1 and array.shape == self.shape[:-1]:
            array = array[..., None]  # grayscale without its channel axis
        if array.shape != self.shape:
            raise BadRequest(f"expected an array of shape {list(self.shape)}, got {list(array.shape)}")
        if not np.all(np.isfinite(array)):
            raise BadRequest("the array holds NaN or infinite values")
        return array

    def _image(self, encoded):
        if not isinstance(encoded, str):
            raise BadRequest('"b64" must be a base64 string of an image file')
        try:
            data = base64.b64decode(encoded, validate=True)
        except (ValueError, TypeError):
            raise BadRequest('"b64" is not valid base64') from None
        return self.image_reader(data)

    def batch(self, examples: list):
        """Examples of one kind -> the model's batch (a dict of columns for tables)."""
        import tensorflow as tf

        if self.table:
            from ..data.table_rows import missing_images, rows_from_objects

            try:
                columns = rows_from_objects(examples, {name: dtype for name, (_, dtype) in self.inputs.items()})
                missing_images([f"instance {i + 1}" for i in range(len(examples))], columns, self.image_paths)
            except Exception as exc:  # a row whose columns are none of the model's, a value of no type, no image file
                raise BadRequest(str(exc).splitlines()[0]) from None
            return {name: tf.constant(values) for name, values in columns.items()}
        if self.text:
            return tf.constant(np.array(examples, dtype=str))
        return np.stack(examples).astype(np.float32)
