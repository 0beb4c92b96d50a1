"""``torch.compile`` with inductor's freezing, switched on where it takes effect.

Freezing turns a model's weights into constants, so inductor folds them, pre-packs convolution
weights for oneDNN and fuses each convolution with its bias, ReLU and residual add
(``mkldnn._convolution_pointwise``). In torch 2.14, ``torch.compile(m, options={"freezing": True})``
does not freeze: dynamo decides whether parameters become graph constants or graph inputs from the
*global* ``torch._inductor.config.freezing`` while it traces (``torch._dynamo.utils.
is_parameter_freezing``), before the options reach inductor, so
the weights stay inputs and inductor has nothing to freeze (the generated code calls
``extern_kernels.convolution`` with the weights as arguments). :class:`FrozenCompiled` sets the
global flag around each call instead (tracing, and any recompilation for a new batch size, happen
inside a call) and restores it after.

Freezing only applies with autograd off, so each call runs under ``torch.no_grad()``: the model is
for inference, its weights are constants.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reszoo.utils.checks import check_choice, check_instance
from reszoo.utils.devices import compile_modes


class FrozenCompiled(nn.Module):
    """``module`` compiled by inductor with freezing; call it like the module.

    Compilation happens on the first call (and again for a new input shape), inside the call.

    Attributes:
        module: the module that was compiled (its attributes, e.g. ``config``, are read there).
        compiled: the ``torch.compile`` wrapper.
        mode: the ``torch.compile`` mode, ``None`` for the default.
    """

    def __init__(self, module: nn.Module, *, mode: str | None = None) -> None:
        super().__init__()
        check_instance("module", module, nn.Module)
        if mode is not None:
            check_choice("torch.compile mode", mode, compile_modes())
        self.module = module
        self.mode = mode
        # Not a submodule attribute: torch.compile's wrapper would register `module` twice.
        self.__dict__["compiled"] = torch.compile(module, mode=mode)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        config = torch._inductor.config
        before = config.freezing
        config.freezing = True  # with no_grad ~6 us a call; config.patch(...) costs ~20 us
        try:
            with torch.no_grad():
                return self.compiled(*args, **kwargs)
        finally:
            config.freezing = before

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":  # not yet set: no fallback
                raise
            return getattr(self.module, name)
