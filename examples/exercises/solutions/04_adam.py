# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 4: one step of Adam, as Keras takes it
#
# | you write | check |
# | --- | --- |
# | `adam_step(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon)` | `check_adam_step` |
#
# Adam keeps two running averages per weight: `m` of the gradient and `v` of its square.
# At step `t` (counting from **1**), with gradient `g`:
#
# $$m \leftarrow \beta_1 m + (1 - \beta_1) g, \qquad v \leftarrow \beta_2 v + (1 - \beta_2) g^2$$
#
# Both start at 0, so during the first steps they are too small: divided by
# $1 - \beta^t$ they are not ("bias correction"). Keras folds both corrections into the
# learning rate and adds epsilon to $\sqrt{v}$ itself:
#
# $$\mathrm{lr}_t = \mathrm{lr}\,\frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}, \qquad
# \mathrm{param} \leftarrow \mathrm{param} - \mathrm{lr}_t\,\frac{m}{\sqrt{v} + \epsilon}$$
#
# (PyTorch adds epsilon to the corrected $\sqrt{v / (1 - \beta_2^t)}$ instead: the two
# differ when $\sqrt{v}$ is about epsilon, which the check tests.) Return the new
# `(param, m, v)`. `t` is an int; the rest are float64 arrays of one shape and floats.

# %%
import numpy as np
from IPython.display import display

from tinycnn.exercises import check_adam_step

np.set_printoptions(precision=4, suppress=True)  # shorter arrays, when you print one


# %%
def adam_step(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon):
    """-> (param, m, v), all of param's shape, after step number t (from 1)."""
    # BEGIN SOLUTION
    m = beta_1 * m + (1 - beta_1) * grad
    v = beta_2 * v + (1 - beta_2) * grad**2
    lr_t = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    return param - lr_t * m / (np.sqrt(v) + epsilon), m, v
    # END SOLUTION


# %%
report = check_adam_step(adam_step)
display(report)

# %%
assert report.ok, report.headline()  # stops "Run All" at the first function to fix
