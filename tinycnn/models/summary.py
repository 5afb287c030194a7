"""``model.summary()``: the classic Keras table, column for column.

Keras (TF 2.0-2.3) prints each row by placing the fields at character positions
29, 55 and 65 of a 65-character line, cutting what does not fit; before each
field after the first, the last character of the line so far becomes a space.
That is why a long name reads ``max_pooling2d_1 (MaxPooling2`` in the table.
"""

from __future__ import annotations

LINE_LENGTH = 65
POSITIONS = (29, 55, 65)  # int(65 * 0.45), int(65 * 0.85), 65


def format_row(fields) -> str:
    line = ""
    for i, field in enumerate(fields):
        if i > 0:
            line = line[:-1] + " "
        line += str(field)
        line = line[: POSITIONS[i]]
        line += " " * (POSITIONS[i] - len(line))
    return line.rstrip()


def format_shape(shape) -> str:
    """``(None, 26, 26, 64)``; Keras prints the batch axis as None."""
    dims = ", ".join(["None", *(str(d) for d in shape)])
    return f"({dims})" if len(shape) else "(None,)"


def summary_lines(model_name: str, rows, trainable: int, non_trainable: int) -> list[str]:
    """The table's lines. ``rows`` are (layer name, class name, output shape, params)."""
    lines = [
        f'Model: "{model_name}"',
        "_" * LINE_LENGTH,
        format_row(["Layer (type)", "Output Shape", "Param #"]),
        "=" * LINE_LENGTH,
    ]
    for k, (name, class_name, shape, n_params) in enumerate(rows):
        lines.append(format_row([f"{name} ({class_name})", format_shape(shape), n_params]))
        lines.append(("=" if k == len(rows) - 1 else "_") * LINE_LENGTH)
    lines += [
        f"Total params: {trainable + non_trainable:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {non_trainable:,}",
        "_" * LINE_LENGTH,
    ]
    return lines
