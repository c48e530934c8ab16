"""`image_folder`: image files in class folders, `[<split>/]<class name>/*.png|jpg|bmp|gif`, the layout
keras.utils.image_dataset_from_directory reads.

Listing gives (file paths, class names) per split, so splits are sliced and carved on the file list
before any image is read. Then `decoded_split` decodes and resizes the files in a parallel tf.data
map and caches the result (memory or a file prefix): one pass before training fills the cache,
finds the files that are not readable images and the image size, so epoch 2 onward reads no file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RunFailed
from ..console import say
from .source import ArraySource, Split, SplitsRead

CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
SPLIT_FOLDERS = ("train", "test", "val", "validation")


def _is_split_layout(path: Path) -> bool:
    """`path/train/<class>/...` rather than `path/<class>/...`: a split-named folder holding folders."""
    return any((path / name).is_dir() and any(p.is_dir() for p in (path / name).iterdir()) for name in SPLIT_FOLDERS)


def _visible(path: Path) -> bool:
    return not any(part.startswith(".") for part in path.parts)


def available_splits(path: Path) -> set[str]:
    """The split folders; none when `path` holds the class folders directly (every split name reads them)."""
    if not _is_split_layout(path):
        return set()
    return {p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")}


def load_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(file paths, class names) of one split, classes and files in sorted order."""
    folder = path / split if _is_split_layout(path) else path
    if not folder.is_dir():
        raise RunFailed(f"data.path: no folder '{split}' in {path} (expected {path}/{split}/<class name>/<images>, or class folders directly in {path})")
    files, labels = [], []
    for class_folder in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = [file for file in sorted(class_folder.rglob("*")) if file.is_file() and _visible(file.relative_to(class_folder))]
        if not found:  # a class with no example: the model never learns it, and no split can judge it
            say(f"warning: {class_folder} is empty: class '{class_folder.name}' has no images and is left out")
        files += [str(file) for file in found]
        labels += [class_folder.name] * len(found)
    if not files:
        raise RunFailed(f"data.path: no files under {folder}/<class name>/")
    return np.array(files), np.array(labels)


def decode(contents, settings):
    """Encoded image bytes -> a (height, width, channels) uint8 tensor, resized as `data.image` says.

    The one decoding of image files, shared by training, `dlopt eval` and `dlopt predict`."""
    import tensorflow as tf

    image = tf.io.decode_image(contents, channels=CHANNELS[settings.color_mode], expand_animations=False)
    if settings.size is None:
        return image
    height, width = settings.size
    if settings.crop_to_aspect_ratio:  # the largest centred window of the target aspect ratio
        shape = tf.shape(image)
        h, w = shape[0], shape[1]
        crop_h = tf.minimum(h, tf.cast(tf.round(tf.cast(w, tf.float32) * height / width), tf.int32))
        crop_w = tf.minimum(w, tf.cast(tf.round(tf.cast(h, tf.float32) * width / height), tf.int32))
        image = tf.image.crop_to_bounding_box(image, (h - crop_h) // 2, (w - crop_w) // 2, tf.maximum(crop_h, 1), tf.maximum(crop_w, 1))
    resized = tf.image.resize(image, (height, width), method=settings.interpolation)
    # kept as 8-bit values: a quarter of the cache's memory, and the same 0-255 inputs as the files
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def decoded_paths(paths: list[str], settings, parallel_calls="auto") -> np.ndarray:
    """Image files decoded and resized as `decode` does, read in a parallel tf.data map: uint8
    (files, height, width, channels); "" (a missing path) a black image. A table's image column,
    once before training, for ReadImage's cache (`data.cache: true`)."""
    import tensorflow as tf

    calls = tf.data.AUTOTUNE if parallel_calls == "auto" else parallel_calls
    shape = (*settings.size, CHANNELS[settings.color_mode])
    images = tf.data.Dataset.from_tensor_slices(tf.constant(paths, dtype=tf.string)).map(lambda path: read_file(path, settings), num_parallel_calls=calls, deterministic=True)
    return np.concatenate([batch for batch in images.batch(1024).as_numpy_iterator()] or [np.zeros((0, *shape), np.uint8)])


def read_file(path, settings):
    """One image path (a string tensor) -> its pixels as `decode` gives them, `settings.size`
    required; "" (a missing path) a black image."""
    import tensorflow as tf

    shape = (*settings.size, CHANNELS[settings.color_mode])
    return tf.cond(tf.strings.length(path) > 0, lambda: tf.ensure_shape(decode(tf.io.read_file(path), settings), shape), lambda: tf.zeros(shape, tf.uint8))


@dataclass
class BadFiles:
    """Files skipped because they are not readable images, over every split read."""

    paths: list

    def warning(self) -> str | None:
        if not self.paths:
            return None
        n = len(self.paths)
        return f"warning: data.path: skipped {n} file{'s' if n > 1 else ''} that {'are' if n > 1 else 'is'} not a readable image (first: {self.paths[0]}); set data.skip_bad_files: false to stop instead"


def decoded_split(paths: np.ndarray, labels: np.ndarray, settings, *, cache, cache_name: str, skip_bad_files: bool, bad: BadFiles, parallel_calls="auto"):
    """(images, labels) of the readable files, decoded and resized in a parallel tf.data map.

    Every file is read once now, so bad files and mixed sizes are reported before training starts,
    never mid-epoch. With `cache: true` the images are returned as one uint8 array in memory; with a
    file prefix (data too big for memory) or `false`, as a tf.data dataset, cached in files or
    decoded again each epoch."""
    import tensorflow as tf

    from .pipeline import cache_file

    calls = tf.data.AUTOTUNE if parallel_calls == "auto" else parallel_calls
    files = tf.data.Dataset.from_tensor_slices((paths, labels, np.arange(len(paths), dtype=np.int64)))
    decoded = files.map(lambda path, label, i: (decode(tf.io.read_file(path), settings), label, i), num_parallel_calls=calls)
    decoded = decoded.ignore_errors()  # an unreadable file drops out here; the scan below names it
    in_memory = cache is True
    if isinstance(cache, str):
        decoded = decoded.cache(cache_file(cache, cache_name))
    kept, shapes, pixels = [], [], []
    if in_memory:  # whole batches, not images one by one: padded, in case sizes differ (an error below)
        for batch, index, shape in decoded.map(lambda image, label, i: (image, i, tf.shape(image))).padded_batch(256).as_numpy_iterator():
            kept += index.tolist()
            shapes += [tuple(s) for s in shape]
            pixels.append(batch)
    else:
        for index, shape in decoded.map(lambda image, label, i: (i, tf.shape(image))).batch(4096).as_numpy_iterator():
            kept += index.tolist()
            shapes += [tuple(s) for s in shape]
    kept = np.array(kept, dtype=np.int64)
    skipped = np.setdiff1d(np.arange(len(paths)), kept)
    if len(skipped):
        if not skip_bad_files:
            raise RunFailed(f"data.path: {paths[skipped[0]]} is not a readable image ({len(skipped)} such file{'s' if len(skipped) > 1 else ''}); remove it or set data.skip_bad_files: true")
        bad.paths += [str(paths[i]) for i in skipped]
    if not len(kept):
        folders = sorted({str(Path(str(path)).parent.parent) for path in paths})
        raise RunFailed(f"data.path: none of the {len(paths)} files of split '{cache_name}' in {', '.join(folders)} is a readable image (the first: {paths[0]})")
    different = next((j for j, shape in enumerate(shapes) if shape != shapes[0]), None)
    if different is not None:
        first, other = paths[kept[0]], paths[kept[different]]
        raise RunFailed(
            f"data.image.size: images differ in size ({first} is {'x'.join(map(str, shapes[0][:2]))}, {other} is "
            f"{'x'.join(map(str, shapes[different][:2]))}); set data.image.size: [height, width] to resize them all"
        )
    shape = tuple(int(d) for d in shapes[0])
    if in_memory:
        return np.concatenate(pixels), labels[kept], None
    dataset = decoded.map(lambda image, label, i: (tf.ensure_shape(image, shape), label))
    # the scan counted the readable files: Keras then knows each epoch's steps
    return None, labels[kept], dataset.apply(tf.data.experimental.assert_cardinality(len(kept)))


class ImageFolderSource(ArraySource):
    """`image_folder`: `[<split>/]<class>/*.png|jpg|bmp|gif`, each listed split's files decoded,
    resized and cached once (see decoded_split)."""

    def load_split(self, path, split):
        return load_split(path, split)

    def available_splits(self, path):
        return available_splits(path)

    def read(self, wanted, roles) -> SplitsRead:
        read = super().read(wanted, roles)
        data = self.data
        bad = BadFiles([])
        for role in roles:
            if role in read.splits:
                paths, labels = read.splits[role].arrays
                pixels, kept, dataset = decoded_split(
                    paths, labels, data.image, cache=data.cache, cache_name=role, skip_bad_files=data.skip_bad_files, bad=bad, parallel_calls=data.parallel_calls
                )
                if pixels is not None:  # decoded into memory (`cache: true`)
                    read.splits[role] = Split(count=len(kept), arrays=(pixels, kept))
                else:
                    read.splits[role] = Split(count=len(kept), dataset=dataset, labels=kept, cached=isinstance(data.cache, str))
        if bad.warning():
            say(bad.warning())
        return read
