"""Reading NVIDIA network records (`safe_pickle.PersistentRecord`): typed attributes, and the mapping network.

StyleGAN2 and StyleGAN3 generators store their configuration as plain
attributes of each persistent object (§2.6 of
`shared/research/checkpoint-formats.md`); `Reader` gives typed access to them
with errors that name the attribute's path, e.g. `G_ema.mapping.num_layers`.
Both generations share the mapping network, read by `mapping_fields`.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import numpy as np

from render.errors import CheckpointError
from render.models.limits import check_sizes
from render.models.safe_pickle import PersistentRecord
from render.untrusted import bounded_repr

__all__ = ["Reader", "mapping_fields", "check_num_ws"]


class Reader:
    """Typed access to one record's attributes and tensors, with errors that name them."""

    def __init__(self, record: PersistentRecord, path: str):
        self.record, self.path = record, path

    def child(self, name: str, class_name: str) -> "Reader":
        child = self.record.children.get(name)
        if child is None:
            raise CheckpointError(f"{self.path}.{name} is missing")
        if child.class_name != class_name:
            raise CheckpointError(f"{self.path}.{name} is a {bounded_repr(child.class_name)}, expected a {class_name}")
        return Reader(child, f"{self.path}.{name}")

    def has_child(self, name: str) -> bool:
        return name in self.record.children

    def attr(self, name: str) -> Any:
        if name not in self.record.attrs:
            raise CheckpointError(f"{self.path} lacks the attribute {name}")
        return self.record.attrs[name]

    def int(self, name: str) -> int:
        value = self.attr(name)
        if not _is_integer(value):
            raise CheckpointError(f"{self.path}.{name} is {bounded_repr(value)}, expected an integer")
        return int(value)

    def float(self, name: str) -> float:
        value = self.attr(name)
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise CheckpointError(f"{self.path}.{name} is {bounded_repr(value)}, expected a number")
        return float(value)

    def optional_float(self, name: str) -> float | None:
        return None if self.attr(name) is None else self.float(name)

    def bool(self, name: str) -> bool:
        value = self.attr(name)
        if not isinstance(value, (bool, np.bool_)):
            raise CheckpointError(f"{self.path}.{name} is {bounded_repr(value)}, expected a boolean")
        return bool(value)

    def str(self, name: str) -> str:
        value = self.attr(name)
        if not isinstance(value, str):
            raise CheckpointError(f"{self.path}.{name} is {bounded_repr(value)}, expected a string")
        return value

    def shape(self, name: str) -> tuple[int, ...]:
        shape = self.optional_shape(name)
        if shape is None:
            raise CheckpointError(f"missing tensor {self.path}.{name}")
        return shape

    def pair(self, name: str) -> tuple[int, int]:
        """A stored (width, height): numpy int arrays of shape [2] in StyleGAN3."""
        value = self.attr(name)
        items = list(value) if isinstance(value, (np.ndarray, list, tuple)) else []
        if len(items) != 2 or not all(_is_integer(item) for item in items):
            raise CheckpointError(f"{self.path}.{name} is {bounded_repr(value)}, expected two integers")
        return int(items[0]), int(items[1])

    def ints(self, name: str, count: int) -> tuple[int, ...]:
        value = self.attr(name)
        if not isinstance(value, (list, tuple)) or len(value) != count or not all(_is_integer(item) for item in value):
            raise CheckpointError(f"{self.path}.{name} is {bounded_repr(value)}, expected {count} integers")
        return tuple(int(item) for item in value)

    def optional_shape(self, name: str) -> tuple[int, ...] | None:
        """The tensor's shape, or None where the record stores no tensor of that name (NVIDIA's `None` buffers)."""
        tensor = self.record.params.get(name, self.record.buffers.get(name))
        return None if tensor is None else tuple(tensor.shape)


def _is_integer(value: Any) -> bool:
    """A Python or numpy integer; booleans are not (numpy's are no numbers.Integral anyway)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def mapping_fields(g: Reader, mapping: Reader) -> dict[str, Any]:
    """The mapping network's sizes and gains, under the names StyleGAN2Config and StyleGAN3Config share."""
    z_dim, w_dim, c_dim = g.int("z_dim"), g.int("w_dim"), g.int("c_dim")
    mapping_layers = mapping.int("num_layers")
    # Before any of these sizes is used: they come from the file.
    check_sizes(z_dim=z_dim, w_dim=w_dim, c_dim=c_dim, img_resolution=g.int("img_resolution"),
                mapping_layers=mapping_layers)
    if mapping_layers < 1:
        raise CheckpointError(f"{mapping.path}.num_layers is {mapping_layers}; a mapping network needs at least one layer")
    fc = [mapping.child(f"fc{index}", "FullyConnectedLayer") for index in range(mapping_layers)]
    activation = fc[0].str("activation")
    # bias_gain is the learning-rate multiplier itself; weight_gain = lr/√in adds nothing.
    lr_multiplier = fc[0].float("bias_gain")
    for layer in fc[1:]:
        if layer.str("activation") != activation or layer.float("bias_gain") != lr_multiplier:
            raise CheckpointError(f"{layer.path} differs from {fc[0].path} in activation or lr multiplier")
    return dict(
        z_dim=z_dim,
        w_dim=w_dim,
        c_dim=c_dim,
        mapping_layers=mapping_layers,
        mapping_features=fc[0].shape("weight")[0] if mapping_layers > 1 else w_dim,
        embed_features=mapping.child("embed", "FullyConnectedLayer").shape("weight")[0] if c_dim > 0 else 0,
        mapping_lr_multiplier=lr_multiplier,
        mapping_activation=activation,
    )


def check_num_ws(readers: Iterable[Reader], num_ws: int, source: str) -> None:
    """Every stored `num_ws` must equal what the network's structure makes."""
    for reader in readers:
        if reader.int("num_ws") != num_ws:
            raise CheckpointError(f"{reader.path}.num_ws is {reader.int('num_ws')}, but {source} make {num_ws}")
