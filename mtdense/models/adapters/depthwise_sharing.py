"""Depthwise sharing with a soft-sharing gate (Guo et al., AAAI 2019) for timm CNNs.

The backbone must be depthwise separable (MobileNetV2 is): every spatial conv
except the stem (the conv that sees the image) is depthwise. Then

* the 1x1 pointwise convs and the stem are **shared** by all tasks/domains
  (frozen by default, trainable with ``train_shared=True``);
* every depthwise conv gets one filter bank per domain, ``DW_d`` for d in the D = T
  tasks, initialised from the pretrained depthwise weights;
* BatchNorms are per task with ``norm='task'`` (default), initialised from the base;
* with ``gate=True`` each task t mixes all D banks with a soft-sharing gate
  computed from its own input x_t to the layer::

      g_t = softmax(FC2_t(ReLU(FC1_t(GAP(x_t)))))          # (D,)
      y_t = sum_d g_t[d] * DW_d(x_t)                         # then BN_t, act, shared PW

  (FC1: C -> hidden, hidden = max(C // gate_reduction, gate_min_hidden), defaults 64, 8;
  FC2: hidden -> D; both per task.) With ``gate=False`` task t uses its own bank only.

Identity at init: all banks equal the pretrained depthwise filters and the BNs
start from the base statistics, so with the gate disabled the network is the base
network exactly; with the gate enabled it is too up to rounding (the gate weights
sum to one over identical banks).

Each depthwise slot's kernel is a :class:`DepthwiseKernel` over its banks and gate.
Cost: the D banks of all active tasks run in one grouped conv per layer
(``groups = T'*C``, D filters per group), i.e. D times the depthwise work per
stream; the shared pointwise convs run once per stream.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Set, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mtdense.models.petl import (ConvSlot, ConvTaskMethod, TaskStreams, channels_to_tasks, safe_key,
                                 tasks_to_channels)
from mtdense.registry import MODELS

__all__ = ['DepthwiseBank', 'SoftSharingGate', 'DepthwiseKernel', 'DepthwiseSharing']


class DepthwiseBank(nn.Module):
    """D copies of one depthwise conv's filters (and bias), ``(D, out, 1, kh, kw)``."""

    def __init__(self, num_banks: int, slot: ConvSlot) -> None:
        super().__init__()
        w = slot.weight.detach()
        self.weight = nn.Parameter(w.unsqueeze(0).repeat(num_banks, 1, 1, 1, 1).clone())
        if slot.bias is not None:
            self.bias = nn.Parameter(slot.bias.detach().unsqueeze(0).repeat(num_banks, 1).clone())
        else:
            self.register_parameter('bias', None)

    @staticmethod
    def num_params(out_channels: int, kernel: Tuple[int, int], bias: bool) -> int:
        """Parameters of one bank (one domain)."""
        return out_channels * (kernel[0] * kernel[1] + int(bias))


class SoftSharingGate(nn.Module):
    """Per-task gate ``softmax(FC2(ReLU(FC1(GAP(x)))))`` over D banks."""

    def __init__(self, num_tasks: int, channels: int, hidden: int, num_banks: int) -> None:
        super().__init__()
        self.channels = channels
        self.fc1_weight = nn.Parameter(torch.empty(num_tasks, channels, hidden))
        self.fc1_bias = nn.Parameter(torch.empty(num_tasks, hidden))
        self.fc2_weight = nn.Parameter(torch.empty(num_tasks, hidden, num_banks))
        self.fc2_bias = nn.Parameter(torch.empty(num_tasks, num_banks))
        # nn.Linear's default init, per task
        for w, b, fan_in in ((self.fc1_weight, self.fc1_bias, channels),
                             (self.fc2_weight, self.fc2_bias, hidden)):
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    @staticmethod
    def num_params(channels: int, hidden: int, num_banks: int) -> int:
        """Parameters of one task's gate."""
        return channels * hidden + hidden + hidden * num_banks + num_banks

    def forward(self, x: Tensor, active: Sequence[int]) -> Tensor:
        """``x``: the channel stack (B, T'*C, H, W) of the active streams -> (B, T', D)."""
        idx = torch.as_tensor(list(active), device=x.device)
        batch, n = x.shape[0], len(active)
        pooled = x.reshape(batch * n, self.channels, *x.shape[2:]).mean(dim=(2, 3)).reshape(
            batch, n, self.channels)
        h = torch.einsum('btc,tch->bth', pooled, self.fc1_weight.index_select(0, idx))
        h = F.relu(h + self.fc1_bias.index_select(0, idx))
        logits = torch.einsum('bth,thd->btd', h, self.fc2_weight.index_select(0, idx))
        return torch.softmax(logits + self.fc2_bias.index_select(0, idx), dim=-1)


class DepthwiseKernel:
    """Kernel of one depthwise slot: the D banks, mixed per task by ``gate`` (or own bank).

    A plain object over the method's ``banks`` / ``gates`` modules (it owns nothing).
    """

    def __init__(self, bank: DepthwiseBank, gate: Optional[SoftSharingGate]) -> None:
        self.bank = bank
        self.gate = gate

    def conv_streams(self, slot: ConvSlot, x: Tensor, active: Sequence[int]) -> Tensor:
        bank = self.bank
        if self.gate is None:  # task t uses bank t only
            idx = torch.as_tensor(list(active), device=x.device)
            weight = bank.weight.index_select(0, idx).flatten(0, 1)          # (T'*O, 1, kh, kw)
            bias = bank.bias.index_select(0, idx).flatten() if bank.bias is not None else None
            return slot.task_conv(x, weight, bias)
        b, n = slot.split(x)
        c, out_ch = slot.in_channels, slot.out_channels
        mult = out_ch // c  # depthwise channel multiplier
        d = bank.weight.shape[0]
        kh, kw = slot.kernel_size
        # group (t, c) gives D*mult outputs ordered (d, j): weight[t, c, d, j] = bank_d[c*mult + j]
        wb = bank.weight.reshape(d, c, mult, kh, kw).transpose(0, 1)        # (C, D, mult, kh, kw)
        weight = wb.unsqueeze(0).expand(n, -1, -1, -1, -1, -1).reshape(n * c * d * mult, 1, kh, kw)
        bias = None
        if bank.bias is not None:
            bb = bank.bias.reshape(d, c, mult).transpose(0, 1)
            bias = bb.unsqueeze(0).expand(n, -1, -1, -1).reshape(-1)
        xs = tasks_to_channels(x, n)                                         # (B, T'*C, H, W)
        y = slot.conv(xs, weight, bias, n * c)
        ho, wo = y.shape[-2:]
        g = self.gate(xs, active)                                            # (B, T', D)
        y = torch.einsum('btcdjhw,btd->btcjhw', y.reshape(b, n, c, d, mult, ho, wo), g)
        return channels_to_tasks(y.reshape(b, n * out_ch, ho, wo), n)


@MODELS.register_module()
class DepthwiseSharing(ConvTaskMethod):
    """Per-domain depthwise banks + BN, shared pointwise convs, soft-sharing gate.

    Args:
        tasks: task (domain) names; D = len(tasks) banks per depthwise conv.
        gate: mix all banks with the soft-sharing gate (else: own bank only).
        gate_reduction: hidden width of the gate is ``C // gate_reduction``...
        gate_min_hidden: ... but at least this. The defaults (64, 8) keep the gates of
            MobileNetV2 near the size of one domain's depthwise banks; FC1 is
            ``C x hidden`` per layer and task, so a small reduction is costly.
        norm: ``'task'`` (per-task BatchNorm, default) or ``'frozen'``.
        train_shared: also train the shared pointwise convs and the stem.
    """

    def __init__(self, tasks: Sequence[str], gate: bool = True, gate_reduction: int = 64,
                 gate_min_hidden: int = 8, norm: str = 'task', train_shared: bool = False) -> None:
        super().__init__(tasks, norm)
        if int(gate_reduction) <= 0 or int(gate_min_hidden) <= 0:
            raise ValueError(f'DepthwiseSharing: gate_reduction ({gate_reduction}) and '
                             f'gate_min_hidden ({gate_min_hidden}) must be positive')
        self._gate = bool(gate)
        self.gate_reduction = int(gate_reduction)
        self.gate_min_hidden = int(gate_min_hidden)
        self.train_shared = bool(train_shared)
        self.banks = nn.ModuleDict()
        self.gates = nn.ModuleDict()
        self._dw: Dict[str, Tuple[int, Tuple[int, int], bool, int]] = {}
        self._shared: Dict[str, ConvSlot] = {}

    @property
    def gate(self) -> bool:
        """Whether the banks are mixed by the soft-sharing gate (settable after attaching)."""
        return self._gate

    @gate.setter
    def gate(self, value: bool) -> None:
        value = bool(value)
        if value and self._dw and not len(self.gates):
            raise ValueError('DepthwiseSharing: built with gate=False, it has no gates')
        self._gate = value
        for name in self._dw:
            self._bind(self._convs[name])

    def _bind(self, slot: ConvSlot) -> None:
        key = safe_key(slot.name)
        slot.set_kernel(DepthwiseKernel(self.banks[key], self.gates[key] if self._gate else None))

    @property
    def num_banks(self) -> int:
        return self.num_tasks

    def gate_hidden(self, channels: int) -> int:
        return max(channels // self.gate_reduction, self.gate_min_hidden)

    def _build_conv(self, slot: ConvSlot) -> None:
        if slot.depthwise:
            key = safe_key(slot.name)
            self.banks[key] = DepthwiseBank(self.num_banks, slot)
            hidden = self.gate_hidden(slot.in_channels)
            if self.gate:
                self.gates[key] = SoftSharingGate(self.num_tasks, slot.in_channels, hidden,
                                                  self.num_banks)
            self._dw[slot.name] = (slot.out_channels, slot.kernel_size, slot.bias is not None,
                                   hidden)
            self._bind(slot)
            return
        if slot.spatial and slot.in_channels != 3:
            raise ValueError(
                f'DepthwiseSharing: {slot.name} is a dense {slot.kernel_size[0]}x'
                f'{slot.kernel_size[1]} conv (groups={slot.groups}); depthwise sharing needs a '
                'depthwise-separable backbone (e.g. mobilenetv2_*), where every spatial conv '
                'except the stem is depthwise')
        self._shared[slot.name] = slot

    def attach(self, model: nn.Module, streams: TaskStreams) -> None:
        super().attach(model, streams)
        if not self._dw:
            raise ValueError('DepthwiseSharing: the backbone has no depthwise convs')

    def backbone_trainable_names(self) -> Set[str]:
        if not self.train_shared:
            return set()
        names = set()
        for name, slot in self._shared.items():
            names.add(f'{name}.weight')
            if slot.bias is not None:
                names.add(f'{name}.bias')
        return names

    # ------------------------------------------------------------- counting
    def _bank_params(self) -> int:
        """Parameters of one domain's banks over all depthwise layers."""
        return sum(DepthwiseBank.num_params(o, k, bias) for o, k, bias, _ in self._dw.values())

    def _gate_params(self) -> int:
        """Parameters of one task's gates over all depthwise layers."""
        if not self.gate:
            return 0
        return sum(SoftSharingGate.num_params(self._convs[name].in_channels, hidden,
                                              self.num_banks)
                   for name, (_, _, _, hidden) in self._dw.items())

    def expected_num_params(self) -> int:
        return self.num_tasks * (self._bank_params() + self._gate_params() +
                                 self.norm_task_params())

    def task_param_counts(self) -> Dict[str, int]:
        # with the gate every task reads every bank: the banks are shared then
        own_bank = 0 if self.gate else self._bank_params()
        n = own_bank + self._gate_params() + self.norm_task_params()
        return {t: n for t in self.tasks}

    def task_owned_counts(self) -> Dict[str, int]:
        n = self._bank_params() + self._gate_params() + self.norm_task_params()
        return {t: n for t in self.tasks}

    def overhead_macs(self, slot: ConvSlot, out_shape: Tuple[int, int, int]) -> Tuple[int, int]:
        if not slot.depthwise or not self.gate:
            return 0, 0
        c, h, w = out_shape
        kh, kw = slot.kernel_size
        hidden = self._dw[slot.name][3]
        extra_banks = (self.num_banks - 1) * c * h * w * kh * kw
        mixing = self.num_banks * c * h * w
        gate = slot.in_channels * hidden + hidden * self.num_banks
        return extra_banks + mixing + gate, 0
