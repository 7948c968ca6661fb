"""Per-row LoRA adapters for one batch with a fixed number of operators per layer.

peft's mixed batch (`generate(..., adapter_names=[...])`) runs, in every LoRA layer and
at every decode step, a Python loop over the batch's adapters: index the rows of each
(a Python list turned into a device tensor: a host-to-device copy each time), run its A
and B, scale, scatter back. A decode step at batch <= 5 on a GPU is bound by operator
launches, not by arithmetic (~1.4x the operators of one adapter, engine_step_cost.md), so
that loop is what a mixed step costs over a plain one: on an H200 at polyglot-ko-1.3b's
shapes, 23.5 ms for 4 rows of two heads vs 15.1 ms stacked (engine_replay.md).

Here the adapters of the rows are gathered ONCE per `generate` call into per-row
weight stacks, A of shape (rows, in, r) and B·scaling of shape (rows, r, out), and each
LoRA layer adds `bmm(bmm(x, A), B)` to its base output: three operators per layer and
step whatever the mix of adapters, no host round trip. The result is peft's, up to
floating-point summation order (tests/heads/test_row_lora.py compares the logits).

    >>> with row_adapters(model, ["output_message", "output_message", "memory"]):  # doctest: +SKIP
    ...     out = model.generate(**batch_of_three)

Works for peft's plain LoRA on `nn.Linear` (what SPEC §2's heads are); anything else
(DoRA and other variants, embedding LoRA, merged or fan_in_fan_out layers, training
mode) raises `Unsupported`, and `generate_heads` then uses peft's own mixed batch.
"""

from __future__ import annotations

import torch


class Unsupported(ValueError):
    """The model holds a LoRA layer this module does not reproduce exactly."""


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    for m in layers:
        if not isinstance(m.base_layer, torch.nn.Linear):
            raise Unsupported(f"{type(m.base_layer).__name__} LoRA layer")
        if getattr(m, "lora_variant", None) or getattr(m, "merged_adapters", None) or getattr(m, "fan_in_fan_out", False):
            raise Unsupported("a LoRA variant, merged adapter or fan_in_fan_out layer")
        if m.training:
            raise Unsupported("a layer in training mode (its dropout would differ)")
    return layers


def _stack(layer, names: list[str]):
    """(A, B) per row: A (rows, in, r), B·scaling (rows, r, out); zeros for base rows."""
    known = sorted({n for n in names if n in layer.lora_A})
    if not known:
        return None
    r = max(layer.lora_A[n].weight.shape[0] for n in known)  # lower ranks are zero-padded: exact
    pieces = {}
    for n in known:  # one transpose-and-scale per distinct adapter, not per row
        wa, wb = layer.lora_A[n].weight.t(), layer.lora_B[n].weight.t() * layer.scaling[n]
        pad = r - wa.shape[1]
        pieces[n] = (torch.nn.functional.pad(wa, (0, pad)), torch.nn.functional.pad(wb, (0, 0, 0, pad))) if pad else (wa, wb)
    if any(n not in pieces for n in names):  # base rows (or an adapter this layer lacks): no update, as in peft
        wa, wb = pieces[known[0]]
        pieces[None] = (torch.zeros_like(wa), torch.zeros_like(wb))
    rows = [pieces.get(n, pieces.get(None)) for n in names]
    return torch.stack([a for a, _ in rows]), torch.stack([b for _, b in rows])


class RowAdapters:
    """Reusable context: enter it around each forward or `generate` of a batch whose row i
    reads adapter `names[i]`. The stacks are built once, here; entering only attaches them."""

    def __init__(self, model, names: list[str]):
        self.model, self.rows = model, len(names)
        layers = _lora_layers(model)
        with torch.no_grad():
            self.stacks = [(layer, st) for layer in layers if (st := _stack(layer, names)) is not None]
        self._handles: list = []
        self._disabled = None

    def _hook(self, a, b):
        rows = self.rows

        def add_rows(module, args, output):
            x = args[0]
            if x.shape[0] != rows:
                raise RuntimeError(f"row_adapters: a forward of {x.shape[0]} rows in a block set up for {rows}")
            return output + torch.bmm(torch.bmm(x.to(a.dtype), a), b).to(output.dtype)

        return add_rows

    def __enter__(self):
        if self._disabled is not None:
            raise RuntimeError("row_adapters: this context is already entered")
        try:
            for layer, (a, b) in self.stacks:
                self._handles.append(layer.register_forward_hook(self._hook(a, b)))
            # each LoraLayer now returns its base output; the hooks add the rows' updates
            self._disabled = self.model.disable_adapter()
            self._disabled.__enter__()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc):
        try:
            if self._disabled is not None:
                self._disabled.__exit__(*exc)
        finally:
            self._disabled = None
            self._remove()
        return False

    def _remove(self):
        for h in self._handles:
            h.remove()
        self._handles = []


def row_adapters(model, names: list[str]) -> RowAdapters:
    """A context in which batch row i of every forward reads adapter `names[i]` (none for
    a name the model lacks, such as peft's "__base__"). `model` is a peft model; its own
    adapters are disabled meanwhile. Raises Unsupported here, before any block is entered."""
    return RowAdapters(model, names)
