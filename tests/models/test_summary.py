"""model.summary(): the Keras table, line for line; names, shapes and parameter counts."""

from __future__ import annotations

import pytest

import tinycnn
from tinycnn.layers import Conv2D, Dense, Flatten, MaxPooling2D, ReLU
from tinycnn.models.summary import format_row

EXPECTED = """\
Model: "sequential"
_________________________________________________________________
Layer (type)                 Output Shape              Param #
=================================================================
conv2d (Conv2D)              (None, 26, 26, 64)        640
_________________________________________________________________
max_pooling2d (MaxPooling2D) (None, 13, 13, 64)        0
_________________________________________________________________
conv2d_1 (Conv2D)            (None, 11, 11, 64)        36928
_________________________________________________________________
max_pooling2d_1 (MaxPooling2 (None, 5, 5, 64)          0
_________________________________________________________________
flatten (Flatten)            (None, 1600)              0
_________________________________________________________________
dense (Dense)                (None, 512)               819712
_________________________________________________________________
dense_1 (Dense)              (None, 10)                5130
=================================================================
Total params: 862,410
Trainable params: 862,410
Non-trainable params: 0
_________________________________________________________________
""".splitlines()


def test_seed_network_summary_line_for_line():
    lines = []
    tinycnn.models.fashion_mnist_cnn(seed=0).summary(print_fn=lines.append)
    assert [line.rstrip() for line in lines] == EXPECTED


def test_summary_prints_by_default(capsys):
    tinycnn.models.fashion_mnist_cnn(seed=0).summary()
    assert capsys.readouterr().out.splitlines()[8] == EXPECTED[8]


def test_count_params_and_per_layer_counts():
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    assert model.count_params() == 862410
    assert [layer.count_params() for layer in model.layers] == [640, 0, 36928, 0, 0, 819712, 5130]


def test_output_shapes():
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    assert model.output_shapes() == [
        (26, 26, 64),
        (13, 13, 64),
        (11, 11, 64),
        (5, 5, 64),
        (1600,),
        (512,),
        (10,),
    ]


def test_names_are_numbered_per_model():
    first = tinycnn.models.fashion_mnist_cnn(seed=0)
    second = tinycnn.models.fashion_mnist_cnn(seed=1)  # a second model starts again at conv2d
    expected = [
        "conv2d",
        "max_pooling2d",
        "conv2d_1",
        "max_pooling2d_1",
        "flatten",
        "dense",
        "dense_1",
    ]
    assert [layer.name for layer in first.layers] == expected
    assert [layer.name for layer in second.layers] == expected


def test_relu_is_named_re_lu_and_explicit_names_are_kept():
    model = tinycnn.Sequential(
        [Dense(4, input_shape=(3,)), ReLU(), Dense(2, name="logits"), ReLU(), Dense(2)]
    )
    assert [layer.name for layer in model.layers] == [
        "dense",
        "re_lu",
        "logits",
        "re_lu_1",
        "dense_1",
    ]
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[6] == "re_lu (ReLU)                 (None, 4)                 0"
    assert lines[-4:-1] == ["Total params: 32", "Trainable params: 32", "Non-trainable params: 0"]


def test_summary_of_a_model_named_otherwise():
    model = tinycnn.Sequential([Flatten(input_shape=(2, 2, 1)), Dense(3)], name="tiny")
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[0] == 'Model: "tiny"'
    assert lines[4] == "flatten (Flatten)            (None, 4)                 0"
    assert lines[6] == "dense (Dense)                (None, 3)                 15"


def test_format_row_cuts_long_fields_like_keras():
    row = format_row(["max_pooling2d_12 (MaxPooling2D)", "(None, 5, 5, 64)", 0])
    assert row == "max_pooling2d_12 (MaxPooling (None, 5, 5, 64)          0"
    assert len(format_row(["a", "b", 123456789012345])) == 65


def test_summary_of_an_unbuilt_model_without_input_shape_raises():
    model = tinycnn.Sequential([Conv2D(2, 3), MaxPooling2D(), Flatten(), Dense(2)])
    with pytest.raises(RuntimeError, match=r"summary: the model is not built yet"):
        model.summary(print_fn=lambda line: None)
    model.build((None, 8, 8, 1))  # Keras' leading batch axis is accepted
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[4] == "conv2d (Conv2D)              (None, 6, 6, 2)           20"
    assert model.count_params() == 20 + 18 * 2 + 2
