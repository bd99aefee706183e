"""Incremental inference for occlusion (the Krypton idea, Nakandala et al., SIGMOD 2019).

An occluded copy differs from the image only inside the window, so each layer's output differs
only inside a rectangle that grows with the receptive field. The model is traced with
``torch.fx``; every activation of the unoccluded image is computed once, and for a batch of
occluded copies each node is evaluated in one of two ways:

* **patched**: the node's output is the cached activation plus, per copy, a changed rectangle of
  fixed size at its own offset (:class:`Patch`). Pointwise ops (eval-mode BatchNorm, ReLU, …)
  transform the rectangle only; convolutions and pooling read the rectangle plus its halo from
  the cached input (true neighbours inside the map, the op's own padding only at the map
  border) and run on that crop without padding; add/mul/cat work on the union rectangle.
* **full**: when the changed rectangle would cover at least ``full_fraction`` of the output map,
  or for any op not listed above, the copies are materialised and the node runs as usual.

Every value computed is the value the full network computes, so the scores equal plain
occlusion up to floating-point rounding.
"""

from __future__ import annotations

import operator
import time
from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from deepcovid.explain.grid import OcclusionGrid
from deepcovid.explain.plain import as_scores

POINTWISE_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.Mish,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
)
POINTWISE_FUNCTIONS = {
    F.relu,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.silu,
    F.gelu,
    F.hardswish,
    F.hardsigmoid,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
}
POINTWISE_METHODS = {"relu", "relu_", "sigmoid", "tanh"}
MERGE_FUNCTIONS = {operator.add, operator.sub, operator.mul, torch.add, torch.sub, torch.mul}
MERGE_METHODS = {"add", "sub", "mul"}
# A node goes full once its changed rectangle covers this share of its output map: measured
# best among 0.25-0.9 for ResNet18 and DenseNet-121 at 224 px (benchmarks/README.md).
FULL_FRACTION = 0.75


class IncrementalUnsupportedError(ValueError):
    """The model cannot be evaluated incrementally (untraceable, training mode, aliasing)."""


@dataclass
class Patch:
    """A batch of activations that equal ``base`` except in one rectangle per copy.

    ``base`` is ``(1, C, H, W)``; ``values`` ``(B, C, h, w)`` holds each copy's rectangle, whose
    top-left corner is ``(top[b], left[b])``.
    """

    base: torch.Tensor
    values: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor

    @property
    def size(self) -> tuple[int, int]:
        return self.values.shape[-2], self.values.shape[-1]


@dataclass(frozen=True)
class Window:
    """Geometry of a sliding-window op along both axes (kernel, stride, padding, dilation)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    pad_value: float

    def extent(self, axis: int) -> int:
        return self.dilation[axis] * (self.kernel[axis] - 1) + 1


@dataclass(frozen=True)
class Pad:
    """Padding of ``(left, right, top, bottom)`` pixels filled with ``value``."""

    sides: tuple[int, int, int, int] = (0, 0, 0, 0)
    value: float = 0.0


NO_PAD = Pad()


def sliding_window(module: nn.Module) -> Window | None:
    """The window of a conv/pool layer that can run on a crop, or None if it cannot."""
    if isinstance(module, nn.Conv2d):
        if isinstance(module.padding, str) or module.padding_mode != "zeros":
            return None
        return Window(
            module.kernel_size, module.stride, module.padding, module.dilation, pad_value=0.0
        )
    if isinstance(module, nn.MaxPool2d) and not module.return_indices:
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride or module.kernel_size)
        return Window(
            kernel, stride, _pair(module.padding), _pair(module.dilation), pad_value=-float("inf")
        )
    if isinstance(module, nn.AvgPool2d) and not module.ceil_mode:
        padding = _pair(module.padding)
        if any(padding) and not module.count_include_pad:
            return None
        kernel = _pair(module.kernel_size)
        return Window(kernel, _pair(module.stride or kernel), padding, (1, 1), pad_value=0.0)
    return None


def run_unpadded(module: nn.Module, crop: torch.Tensor) -> torch.Tensor:
    """Apply a conv/pool layer to an already padded crop."""
    if isinstance(module, nn.Conv2d):
        return F.conv2d(
            crop, module.weight, module.bias, module.stride, 0, module.dilation, module.groups
        )
    if isinstance(module, nn.MaxPool2d):
        stride = module.stride or module.kernel_size
        return F.max_pool2d(crop, module.kernel_size, stride, 0, module.dilation)
    stride = module.stride or module.kernel_size
    return F.avg_pool2d(
        crop, module.kernel_size, stride, 0, divisor_override=module.divisor_override
    )


def trace(model: nn.Module) -> fx.GraphModule:
    """``model`` as an fx graph with one input, checked for what incremental inference needs."""
    if any(m.training for m in model.modules()):
        raise IncrementalUnsupportedError(
            "the model is in training mode (batch statistics, dropout): call model.eval()"
        )
    try:
        traced = fx.symbolic_trace(model)
    except Exception as error:  # fx raises many kinds of errors for dynamic control flow
        raise IncrementalUnsupportedError(f"torch.fx cannot trace the model: {error}") from error
    if sum(node.op == "placeholder" for node in traced.graph.nodes) != 1:
        raise IncrementalUnsupportedError("the model must take exactly one input tensor")
    modules = dict(traced.named_modules())
    for node in traced.graph.nodes:
        module = modules.get(node.target) if node.op == "call_module" else None
        name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
        in_place = (
            getattr(module, "inplace", False)
            or node.kwargs.get("inplace", False)
            or (node.op in ("call_method", "call_function") and name.endswith("_"))
        )
        source = node.args[0] if node.args else None
        if in_place and isinstance(source, fx.Node) and len(source.users) > 1:
            raise IncrementalUnsupportedError(
                f"{node.name} modifies {source.name} in place while other ops also read it"
            )
    return traced


WRAPPER_NAMES = {"net", "model", "module", "backbone", "features"}


def group_name(target: str) -> str:
    """The block a module belongs to, for the time account: its first path component after
    wrapper names (``net.layer1.0.conv1`` → ``layer1``, ``net.features.denseblock2…`` →
    ``denseblock2``)."""
    parts = target.split(".")
    while len(parts) > 1 and parts[0] in WRAPPER_NAMES:
        parts = parts[1:]
    return parts[0]


def floor_div(value: torch.Tensor, divisor: int) -> torch.Tensor:
    return torch.div(value, divisor, rounding_mode="floor")


def fetch_attr(module: nn.Module, target: str) -> object:
    """The attribute at dotted ``target`` of ``module`` (an fx ``get_attr`` node)."""
    value: object = module
    for name in target.split("."):
        value = getattr(value, name)
    return value


def as_batch(rows: torch.Tensor, copies: int, size: tuple[int, int]) -> torch.Tensor:
    """Rows ``(B · h · w, C)`` as a channels-last ``(B, C, h, w)`` batch (no copy)."""
    return rows.view(copies, size[0], size[1], rows.shape[1]).permute(0, 3, 1, 2)


def within(rows: torch.Tensor, cols: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Per copy, which pixels of the ``rows`` × ``cols`` grid ``(B, h)``, ``(B, w)`` lie in
    ``[0, size[0]) × [0, size[1])``: a ``(B, h, w)`` mask."""
    in_rows = (rows >= 0) & (rows < size[0])
    in_cols = (cols >= 0) & (cols < size[1])
    return in_rows[:, :, None] & in_cols[:, None, :]


def is_pointwise_module(module: nn.Module) -> bool:
    """Whether the module acts on each pixel on its own (in eval mode)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.running_mean is not None
    return isinstance(module, POINTWISE_MODULES)


def axis_geometry(
    start: torch.Tensor, size: int, window: Window, axis: int, out_size: int
) -> tuple[torch.Tensor, int, torch.Tensor, int]:
    """Along one axis, the outputs a changed input span ``[start, start + size)`` reaches.

    Returns the output span (start per copy, common size), clamped inside the map, and the
    input crop that computes it, in the coordinates of the padded input.
    """
    extent, step, pad = window.extent(axis), window.stride[axis], window.padding[axis]
    span = min(out_size, (size + extent - 2) // step + 1)
    first = floor_div(start + pad - extent + step, step).clamp(0, out_size - span)
    return first, span, first * step, (span - 1) * step + extent


class IncrementalRunner:
    """Scores of occluded copies of one image, computing only what the occlusion changes.

    ``full_fraction``: a node switches to full computation when its changed rectangle would
    cover at least this fraction of its output map. ``profile``: record per block the seconds
    spent and the share of the output maps computed, in :attr:`account`.
    """

    def __init__(
        self,
        model: nn.Module,
        grid: OcclusionGrid,
        full_fraction: float = FULL_FRACTION,
        profile: bool = False,
    ) -> None:
        self.traced = trace(model)
        self.grid = grid
        self.full_fraction = full_fraction
        self.profile = profile
        self.modules = dict(self.traced.named_modules())
        self.nodes = list(self.traced.graph.nodes)
        self.dependent = self.input_dependent_nodes()
        self.rules = {node: self.rule(node) for node in self.nodes}
        self.last_use = self.last_uses()
        self.groups = self.node_groups()
        self.base: dict[fx.Node, object] = {}
        self.padded: dict[tuple, torch.Tensor] = {}
        self.materialized: dict[int, torch.Tensor] = {}
        self.image: torch.Tensor | None = None
        self.baseline: torch.Tensor | None = None
        self.account: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])

    # ---- graph analysis ------------------------------------------------------------------
    def input_dependent_nodes(self) -> set[fx.Node]:
        dependent: set[fx.Node] = set()
        for node in self.nodes:
            if node.op == "placeholder" or any(a in dependent for a in node.all_input_nodes):
                dependent.add(node)
        return dependent

    def rule(self, node: fx.Node) -> str:
        """How a node may act on patches: pointwise, window, merge, or full."""
        if node.op == "call_module":
            module = self.modules[node.target]
            if is_pointwise_module(module):
                return "pointwise"
            return "window" if sliding_window(module) is not None else "full"
        first_only = [a for a in node.all_input_nodes if a in self.dependent] == node.args[:1]
        if node.op == "call_function":
            if node.target in POINTWISE_FUNCTIONS and first_only:
                return "pointwise"
            if node.target in MERGE_FUNCTIONS or node.target is torch.cat:
                return "merge"
        if node.op == "call_method":
            if node.target in POINTWISE_METHODS and first_only:
                return "pointwise"
            if node.target in MERGE_METHODS:
                return "merge"
        return "full"

    def last_uses(self) -> dict[int, list[fx.Node]]:
        """For each node position, the values no later node reads (freed there)."""
        position = {node: i for i, node in enumerate(self.nodes)}
        freed: dict[int, list[fx.Node]] = defaultdict(list)
        for node in self.nodes:
            if node.users:
                freed[max(position[user] for user in node.users)].append(node)
        return freed

    def node_groups(self) -> dict[fx.Node, str]:
        groups, current = {}, "input"
        for node in self.nodes:
            if node.op == "call_module":
                current = group_name(node.target)
            groups[node] = current
        return groups

    # ---- plain execution -----------------------------------------------------------------
    def call(self, node: fx.Node, args: tuple, kwargs: dict) -> object:
        """Run ``node``'s op on concrete arguments."""
        if node.op == "call_module":
            return self.modules[node.target](*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        if node.op == "get_attr":
            return fetch_attr(self.traced, node.target)
        raise AssertionError(f"unexpected fx node {node.format_node()}")

    def start(self, image: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        """Cache every activation of the ``(1, C, H, W)`` image; return its score."""
        self.image = image.contiguous(memory_format=torch.channels_last)
        self.baseline = baseline.expand_as(image).contiguous(memory_format=torch.channels_last)
        self.padded.clear()
        self.base = {}
        for node in self.nodes:
            if node.op == "placeholder":
                self.base[node] = self.image
            elif node.op == "output":
                return as_scores(fx.node.map_arg(node.args[0], self.base.__getitem__), 1)[0]
            else:
                args = fx.node.map_arg(node.args, self.base.__getitem__)
                kwargs = fx.node.map_arg(node.kwargs, self.base.__getitem__)
                self.base[node] = self.call(node, args, kwargs)
        raise AssertionError("the traced graph has no output")

    # ---- patches -------------------------------------------------------------------------
    def input_patch(self, tops: torch.Tensor, lefts: torch.Tensor) -> Patch:
        """The occluded copies as a patch of the image: one window-sized rectangle each
        (moved inside the image where the window overhangs the edge)."""
        height, width = self.image.shape[-2:]
        size = self.grid.window
        top, left = tops.clamp(max=height - size[0]), lefts.clamp(max=width - size[1])
        rows = torch.arange(size[0], device=top.device) + (top - tops)[:, None]
        cols = torch.arange(size[1], device=top.device) + (left - lefts)[:, None]
        occluded = within(rows, cols, size)
        values = torch.where(
            occluded.reshape(-1, 1),
            self.gather(self.baseline, top, left, size),
            self.gather(self.image, top, left, size),
        )
        return Patch(self.image, as_batch(values, len(top), size), top, left)

    def rows(self, base: torch.Tensor, pad: Pad = NO_PAD) -> torch.Tensor:
        """``base`` ``(1, C, H, W)`` padded by ``pad``, as one row of channels per pixel
        ``(H' · W', C)``; cached per image."""
        key = (base.data_ptr(), tuple(base.shape), base.stride(), pad)
        if key not in self.padded:
            padded = F.pad(base, pad.sides, value=pad.value) if any(pad.sides) else base
            self.padded[key] = padded[0].permute(1, 2, 0).reshape(-1, base.shape[1])
        return self.padded[key]

    def paste(
        self,
        windows: torch.Tensor,
        patch: Patch,
        top: torch.Tensor,
        left: torch.Tensor,
        size: tuple[int, int],
        offset: tuple[int, int] = (0, 0),
    ) -> None:
        """Write each copy's changed rectangle into its window rows ``(B · h · w, C)`` (windows
        at ``top``/``left``; the patch sits at ``offset`` in those coordinates)."""
        height, width = patch.size
        copy = torch.arange(len(top), device=top.device)[:, None]
        rows = torch.arange(height, device=top.device) + (patch.top + offset[0] - top)[:, None]
        cols = torch.arange(width, device=top.device) + (patch.left + offset[1] - left)[:, None]
        target = ((copy * size[0] + rows) * size[1])[:, :, None] + cols[:, None, :]
        source = patch.values.permute(0, 2, 3, 1).reshape(-1, windows.shape[1])
        inside = within(rows, cols, size)
        if bool(inside.all()):
            windows.index_copy_(0, target.reshape(-1), source)
        else:
            windows.index_copy_(0, target[inside], source[inside.reshape(-1)])

    def gather(
        self,
        base: torch.Tensor,
        top: torch.Tensor,
        left: torch.Tensor,
        size: tuple[int, int],
        pad: Pad = NO_PAD,
    ) -> torch.Tensor:
        """Rows ``(B · h · w, C)`` of each copy's ``size`` window at ``top``/``left`` of the
        padded ``base``."""
        width = base.shape[-1] + pad.sides[0] + pad.sides[1]
        rows = torch.arange(size[0], device=top.device) + top[:, None]
        cols = torch.arange(size[1], device=top.device) + left[:, None]
        pixels = (rows[:, :, None] * width + cols[:, None, :]).reshape(-1)
        return self.rows(base, pad).index_select(0, pixels)

    def read(
        self,
        patch: Patch,
        top: torch.Tensor,
        left: torch.Tensor,
        size: tuple[int, int],
        pad: Pad = NO_PAD,
    ) -> torch.Tensor:
        """Each copy's ``size`` window at ``top``/``left`` (padded coordinates) of the padded
        activations: ``(B, C, h, w)``, channels-last."""
        if (
            not any(pad.sides)
            and size == patch.size
            and torch.equal(top, patch.top)
            and torch.equal(left, patch.left)
        ):
            return patch.values
        windows = self.gather(patch.base, top, left, size, pad)
        self.paste(windows, patch, top, left, size, (pad.sides[2], pad.sides[0]))
        return as_batch(windows, len(top), size)

    def full(self, value: object) -> object:
        """A patch as the full ``(B, C, H, W)`` activations (other values unchanged)."""
        if not isinstance(value, Patch):
            return value
        if id(value) not in self.materialized:
            zero = torch.zeros_like(value.top)
            self.materialized[id(value)] = self.read(value, zero, zero, value.base.shape[-2:])
        return self.materialized[id(value)]

    def small_enough(self, size: tuple[int, int], full_size: tuple[int, int]) -> bool:
        return size[0] * size[1] < self.full_fraction * full_size[0] * full_size[1]

    # ---- patched evaluation --------------------------------------------------------------
    def windowed(self, node: fx.Node, patch: Patch) -> Patch | None:
        """A conv/pool layer on the changed rectangle plus its halo, or None to go full."""
        module = self.modules[node.target]
        window = sliding_window(module)
        output = self.base[node]
        in_size, out_size = patch.base.shape[-2:], output.shape[-2:]
        top, rows, crop_top, crop_rows = axis_geometry(
            patch.top, patch.size[0], window, 0, out_size[0]
        )
        left, cols, crop_left, crop_cols = axis_geometry(
            patch.left, patch.size[1], window, 1, out_size[1]
        )
        if not self.small_enough((rows, cols), out_size):
            return None
        needed = [
            (n - 1) * s + window.extent(a)
            for a, (n, s) in enumerate(zip(out_size, window.stride, strict=True))
        ]
        pad = Pad(
            (
                window.padding[1],
                max(0, needed[1] - in_size[1] - window.padding[1]),
                window.padding[0],
                max(0, needed[0] - in_size[0] - window.padding[0]),
            ),
            window.pad_value,
        )
        crop = self.read(patch, crop_top, crop_left, (crop_rows, crop_cols), pad)
        return Patch(output, run_unpadded(module, crop), top, left)

    def merged(self, node: fx.Node, args: tuple, kwargs: dict) -> Patch | None:
        """add/sub/mul/cat of patches over the union of their rectangles, or None to go full."""
        output = self.base[node]
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            return None
        is_cat = node.target is torch.cat
        if is_cat:
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            if dim not in (1, -3):
                return None
            operands = list(args[0])
        else:
            operands = list(args)
        patches = [a for a in operands if isinstance(a, Patch)]
        if not patches or any(
            isinstance(a, torch.Tensor) and not (is_cat and a.shape[0] == 1) for a in operands
        ):
            return None  # a full batch, or a constant tensor outside a cat: no patch
        if any(p.base.shape[-2:] != output.shape[-2:] for p in patches) or (
            not is_cat and any(p.base.shape != output.shape for p in patches)
        ):
            return None  # broadcasting over the map
        top = torch.stack([p.top for p in patches]).min(0).values
        left = torch.stack([p.left for p in patches]).min(0).values
        bottom = torch.stack([p.top + p.size[0] for p in patches]).max(0).values
        right = torch.stack([p.left + p.size[1] for p in patches]).max(0).values
        size = (int((bottom - top).max()), int((right - left).max()))
        if not self.small_enough(size, output.shape[-2:]):
            return None
        top = top.clamp(max=output.shape[-2] - size[0])
        left = left.clamp(max=output.shape[-1] - size[1])
        if is_cat:
            values = self.gather(output, top, left, size)
            first = 0
            for operand in operands:
                channels = operand.base.shape[1] if isinstance(operand, Patch) else operand.shape[1]
                if isinstance(operand, Patch):
                    self.paste(values[:, first : first + channels], operand, top, left, size)
                first += channels
            return Patch(output, as_batch(values, len(top), size), top, left)
        windows = [self.read(a, top, left, size) if isinstance(a, Patch) else a for a in operands]
        return Patch(output, self.call(node, tuple(windows), kwargs), top, left)

    def evaluate(self, node: fx.Node, env: dict[fx.Node, object]) -> object:
        """One input-dependent node for the whole batch of occluded copies."""
        args = fx.node.map_arg(node.args, env.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, env.__getitem__)
        rule = self.rules[node]
        result = None
        if rule == "pointwise" and isinstance(args[0], Patch):
            patch = args[0]
            values = self.call(node, (patch.values, *args[1:]), kwargs)
            result = Patch(self.base[node], values, patch.top, patch.left)
        elif rule == "window" and isinstance(args[0], Patch):
            result = self.windowed(node, args[0])
        elif rule == "merge":
            result = self.merged(node, args, kwargs)
        if result is not None:
            return result
        args = fx.node.map_aggregate(args, self.full)
        kwargs = fx.node.map_aggregate(kwargs, self.full)
        return self.call(node, args, kwargs)

    def occluded(self, tops: torch.Tensor, lefts: torch.Tensor) -> torch.Tensor:
        """Scores ``(B,)`` of the image occluded by the windows at ``tops``/``lefts``."""
        env: dict[fx.Node, object] = {}
        self.materialized.clear()
        for position, node in enumerate(self.nodes):
            if node.op == "placeholder":
                env[node] = self.input_patch(tops, lefts)
            elif node.op == "output":
                output = fx.node.map_aggregate(
                    fx.node.map_arg(node.args[0], env.__getitem__), self.full
                )
                self.materialized.clear()
                return as_scores(output, len(tops))
            elif node not in self.dependent:
                env[node] = self.base[node]
            elif self.profile:
                env[node] = self.timed(node, env)
            else:
                env[node] = self.evaluate(node, env)
            for done in self.last_use.get(position, ()):
                self.materialized.pop(id(env.pop(done)), None)
        raise AssertionError("the traced graph has no output")

    def timed(self, node: fx.Node, env: dict[fx.Node, object]) -> object:
        """:meth:`evaluate`, adding its time and computed share to :attr:`account`."""
        synchronize = torch.cuda.synchronize if self.image.is_cuda else (lambda: None)
        synchronize()
        began = time.perf_counter()
        value = self.evaluate(node, env)
        synchronize()
        entry = self.account[self.groups[node]]
        entry[0] += time.perf_counter() - began
        if isinstance(value, Patch):
            entry[1] += value.size[0] * value.size[1] / value.base.shape[-2:].numel()
        elif isinstance(value, torch.Tensor):
            entry[1] += 1.0
        entry[2] += 1
        return value
