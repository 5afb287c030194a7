"""``load_model``: a Sequential rebuilt from a file written by ``model.save(path)``.

The file's format, and how every part of it is checked before it is read, are
``tinycnn.saving``'s. Here the model is built from what the file holds: first the
architecture (layer classes and their arguments), then the weights, the optimizer and
its state, and the seed of the last fit.
"""

from __future__ import annotations

import reprlib

from .. import backend
from ..layers import Layer, UnknownLayerError, from_config
from ..saving import ModelArchive, read_contents
from .sequential import Sequential


def load_model(path, compile: bool = True, custom_objects=None) -> Sequential:
    """Rebuild a model saved by ``model.save(path)``: architecture, weights, optimizer.

    Everything in the file is checked against the architecture before any weight is
    read or created (see ``tinycnn.saving``); a file that fails a check raises
    ``tinycnn.saving.ModelFileError``. ``compile=False`` leaves the model uncompiled.

    ``custom_objects``: ``{"ClassName": cls}`` for the layers of your own in the model
    (docs/custom_layers.md). A layer's class comes from the built-in layers or from
    there, never from a name in the file: loading a file imports nothing.
    """
    custom_objects = _check_custom_objects(custom_objects)
    with ModelArchive(path) as archive:
        if all(m == "__format__" or m.startswith("weights/") for m in archive.members):
            raise archive.error(
                "the __architecture__ entry is missing: the file holds weights only "
                "(model.save_weights wrote it). Build the same model in code and call "
                "model.load_weights(path)."
            )
        config = archive.read_json("__architecture__")
        model, input_shape = model_from_config(config, archive, custom_objects)
        contents = read_contents(archive, model.layers, input_shape, compile)
    if input_shape is not None:
        with backend.use_floatx(contents.dtype):
            model.build(input_shape)
        model.set_weights(contents.weights)  # same order: per layer, per parameter
    model.fit_seed = contents.fit_seed
    if contents.optimizer is not None:
        model.compile(optimizer=contents.optimizer, loss=contents.loss)
        model.optimizer.set_state(contents.optimizer_state)
    return model


def model_from_config(
    config, archive: ModelArchive, custom_objects=None
) -> tuple[Sequential, tuple | None]:
    """The (unbuilt) model the ``__architecture__`` entry describes, and its input shape.

    The values come from a file: every type is checked, and whatever a layer's
    constructor refuses becomes a ModelFileError naming the layer. Layer classes come
    from the built-ins and ``custom_objects`` only.
    """

    def damaged(what):
        return archive.error(f"the __architecture__ entry is damaged: {what}")

    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise damaged('expected {"name": ..., "input_shape": [...], "layers": [...]}.')
    name = config.get("name", "sequential")
    input_shape = config.get("input_shape")
    if not isinstance(name, str):
        raise damaged(f"the model's name should be a string, got {reprlib.repr(name)}.")
    if input_shape is not None and not (
        isinstance(input_shape, list) and 1 <= len(input_shape) <= 8
        and all(_is_size(d) for d in input_shape)
    ):  # fmt: skip
        raise damaged(f"input_shape should be positive sizes, got {reprlib.repr(input_shape)}.")
    layers = []
    for index, spec in enumerate(config["layers"]):
        if not (
            isinstance(spec, dict) and isinstance(spec.get("class_name"), str)
            and isinstance(spec.get("config"), dict)
        ):  # fmt: skip
            raise damaged(f'layer {index} should be {{"class_name": ..., "config": {{...}}}}.')
        layer_name = spec["config"].get("name")
        if layer_name is not None and not isinstance(layer_name, str):
            raise damaged(
                f"layer {index}'s name should be a string, got {reprlib.repr(layer_name)}."
            )
        try:
            layers.append(from_config(spec["class_name"], spec["config"], custom_objects))
        except UnknownLayerError as err:  # not damage: a class the caller did not pass
            raise archive.error(f"layer {index}: {err}") from None
        except Exception as err:  # the constructor's checks, on values from the file
            raise damaged(f"layer {index} ({reprlib.repr(spec['class_name'])}): {err}") from err
    try:
        model = Sequential(layers, name=name)
    except (TypeError, ValueError) as err:
        raise damaged(str(err)) from err
    return model, tuple(input_shape) if input_shape is not None else None


def _check_custom_objects(custom_objects) -> dict:
    """``custom_objects`` as a dict of class name -> Layer subclass, checked."""
    if custom_objects is None:
        return {}
    if not isinstance(custom_objects, dict):
        raise TypeError(
            "load_model: custom_objects must be a dict like {'Scale': Scale}, "
            f"got {type(custom_objects).__name__}."
        )
    for name, cls in custom_objects.items():
        if not (isinstance(cls, type) and issubclass(cls, Layer)):
            raise TypeError(
                f"load_model: custom_objects[{name!r}] must be a Layer subclass (the class "
                f"itself, not an instance), got {cls!r}."
            )
    return dict(custom_objects)


def _is_size(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
