"""The FTBC repository's SNN Calibration code path, transcribed as a test oracle (not used by snnbench).

From github.com/shizukanaskytree/FTBC, ``SNNC/SNN_Calibration``: ``models/spiking_layer.py``
(``SpikeModule``, ``SpikeModel``, ``DataSaverHook``, ``find_threshold_mse``, ``get_maximum_activation``),
``models/fold_bn.py`` (``search_fold_and_remove_bn``) and ``models/calibration.py``
(``bias_corr_model`` / ``emp_bias_corr``, ``bias_corr_model_update_step_by_step`` /
``emp_bias_corr_one_step``, ``x_bias_corr_model_update_step_by_step``), and the CIFAR ResNet of
``models/CIFAR/models/resnet.py`` (``BasicBlock``, ``ResNet_Cifar`` with its width and input channels
as parameters, ``SpikeResModule``, ``SpikeBasicBlock``, ``res_specials``) and the SpikeResModule of
``models/ImageNet/models/resnet.py`` (which, unlike the CIFAR one, applies the FTBC biases), with the
same operations in the same order; the weights calibration (``weights_cali_model``,
``weights_cali_layer``, ``weights_cali_res_layer``, ``GetLayerInputOutput``, ``floor_ste``) from
github.com/yhhhli/SNN_Calibration ``models/calibration.py`` (the FTBC copy runs the same operations). Left out: distributed averaging,
printing, ``.cuda()`` and weight initialisation. A "loader" is a list of ``(input, target)``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


class StraightThrough(nn.Module):
    def forward(self, input):
        return input


class SpikeModule(nn.Module):
    def __init__(self, sim_length: int, conv, enable_shift: bool = True):
        super().__init__()
        if isinstance(conv, nn.Conv2d):
            self.fwd_kwargs = {
                "stride": conv.stride,
                "padding": conv.padding,
                "dilation": conv.dilation,
                "groups": conv.groups,
            }
            self.fwd_func = F.conv2d
        else:
            self.fwd_kwargs = {}
            self.fwd_func = F.linear
        self.threshold = torch.tensor(0.0)
        self.mem_pot = 0
        self.mem_pot_init = 0
        self.weight = conv.weight
        self.org_weight = copy.deepcopy(conv.weight.data)
        if conv.bias is not None:
            self.bias = conv.bias
            self.org_bias = copy.deepcopy(conv.bias.data)
        else:
            self.bias = None
            self.org_bias = None
        self.use_spike = False
        self.enable_shift = enable_shift
        self.sim_length = sim_length
        self.cur_t = 0
        self.relu = StraightThrough()
        self.enable_time_dependent_bias = False
        channels = conv.out_channels if isinstance(conv, nn.Conv2d) else conv.out_features
        self.time_dependent_biases = [torch.zeros((channels,)) for _ in range(self.sim_length)]

    def forward(self, input):
        if self.use_spike and not isinstance(self.relu, StraightThrough):
            x = self.fwd_func(input, self.weight, self.bias, **self.fwd_kwargs)
            return self.fire(x)
        return self.relu(self.fwd_func(input, self.org_weight, self.org_bias, **self.fwd_kwargs))

    def fire(self, x):
        """The spiking half of ``forward`` from the shift on (also the ImageNet SpikeResModule's)."""
        if self.enable_shift is True and self.threshold is not None:
            x = x + self.threshold * 0.5 / self.sim_length
        self.mem_pot = self.mem_pot + x
        if self.enable_time_dependent_bias:
            time_dependent_bias = self.time_dependent_biases[self.cur_t % self.sim_length]
            if self.mem_pot.dim() == 4:
                reshaped_bias = time_dependent_bias.view(1, -1, 1, 1)
            else:
                reshaped_bias = time_dependent_bias.view(1, -1)
            self.mem_pot -= reshaped_bias
        spike = (self.mem_pot >= self.threshold).float() * self.threshold
        self.mem_pot -= spike
        self.cur_t += 1
        return spike

    def init_membrane_potential(self):
        self.mem_pot = self.mem_pot_init if isinstance(self.mem_pot_init, int) else self.mem_pot_init.clone()
        self.cur_t = 0


class SpikeModel(nn.Module):
    def __init__(self, model: nn.Module, sim_length: int, specials: dict | None = None):
        super().__init__()
        self.model = model
        self.specials = specials or {}
        self.spike_module_refactor(self.model, sim_length)
        self.use_spike = False
        self.T = sim_length
        self.enable_time_dependent_bias = False

    def spike_module_refactor(self, module: nn.Module, sim_length: int, prev_module=None):
        for name, child in module.named_children():
            if type(child) in self.specials:
                setattr(module, name, self.specials[type(child)](child, sim_length=sim_length))
            elif isinstance(child, nn.Conv2d):
                setattr(module, name, SpikeModule(sim_length=sim_length, conv=child))
                prev_module = getattr(module, name)
            elif isinstance(child, (nn.ReLU, nn.ReLU6)):
                if prev_module is not None:
                    prev_module.add_module("relu", child)
                    setattr(module, name, StraightThrough())
            elif isinstance(child, nn.Linear):
                self.classifier = copy.deepcopy(child)
            else:
                prev_module = self.spike_module_refactor(child, sim_length=sim_length, prev_module=prev_module)
        return prev_module

    def set_spike_state(self, use_spike: bool = True):
        self.use_spike = use_spike
        for m in self.model.modules():
            if isinstance(m, SpikeModule):
                m.use_spike = use_spike

    def init_membrane_potential(self):
        for m in self.model.modules():
            if isinstance(m, SpikeModule):
                m.init_membrane_potential()

    def set_time_dependent_bias(self):
        self.enable_time_dependent_bias = True
        for m in self.model.modules():
            if isinstance(m, SpikeModule):
                m.enable_time_dependent_bias = True

    def forward(self, input):
        if self.use_spike:
            if not self.enable_time_dependent_bias:
                self.init_membrane_potential()
                out = 0
                for _ in range(self.T):
                    out += self.model(input)
            else:
                out = self.model(input)
        else:
            out = self.model(input)
        return out


# ------------------------------------------------------------------ CIFAR ResNet (models/CIFAR/models/resnet.py)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x):
        residual = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu1(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        out = self.relu2(out)
        return out


class ResNet_Cifar(nn.Module):
    """``ResNet_Cifar(BasicBlock, layers, use_bn=True)`` with ``width`` (64 officially) and ``in_channels`` (3)."""

    def __init__(self, block, layers, num_classes=10, width=64, in_channels=3):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 4 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.avgpool(x)
        x = x.view(x.size(0), -1)
        x = self.fc(x)
        return x


class SpikeResModule(SpikeModule):
    """The FTBC copy's: no ``time_dependent_biases`` and no ``cur_t`` in its forward."""

    def __init__(self, sim_length: int, conv, enable_shift: bool = True):
        super().__init__(sim_length, conv, enable_shift)

    def forward(self, input, residual):
        if self.use_spike:
            x = (self.fwd_func(input, self.weight, self.bias, **self.fwd_kwargs)) + residual
            if self.enable_shift is True and self.threshold is not None:
                x = x + self.threshold * 0.5 / self.sim_length
            self.mem_pot = self.mem_pot + x
            spike = (self.mem_pot >= self.threshold).float() * self.threshold
            self.mem_pot -= spike
            return spike
        return self.relu(self.fwd_func(input, self.org_weight, self.org_bias, **self.fwd_kwargs) + residual)


class ImageNetSpikeResModule(SpikeModule):
    """The FTBC copy's ``models/ImageNet/models/resnet.py`` SpikeResModule: it subtracts the step's
    ``time_dependent_biases`` after the input and counts ``cur_t``, in SpikeModule's lines (``fire``)."""

    def __init__(self, sim_length: int, conv, enable_shift: bool = True):
        super().__init__(sim_length, conv, enable_shift)

    def forward(self, input, residual):
        if self.use_spike:
            x = (self.fwd_func(input, self.weight, self.bias, **self.fwd_kwargs)) + residual
            return self.fire(x)
        return self.relu(self.fwd_func(input, self.org_weight, self.org_bias, **self.fwd_kwargs) + residual)


class SpikeBasicBlock(nn.Module):
    """Both copies' SpikeBasicBlock; ``res_module`` is the copy's SpikeResModule (the CIFAR one here,
    the ImageNet one in :class:`ImageNetSpikeBasicBlock`; their BasicBlocks have the same attributes)."""

    res_module = SpikeResModule

    def __init__(self, basic_block: BasicBlock, **spike_params):
        super().__init__()
        self.conv1 = SpikeModule(conv=basic_block.conv1, **spike_params)
        self.conv1.add_module("relu", basic_block.relu1)
        self.conv2 = self.res_module(conv=basic_block.conv2, **spike_params)
        self.conv2.add_module("relu", basic_block.relu2)
        self.downsample = basic_block.downsample
        self.stride = basic_block.stride

    def forward(self, x):
        residual = x
        out = self.conv1(x)
        if self.downsample is not None:
            residual = self.downsample(x)
        out = self.conv2(out, residual)
        return out


class ImageNetSpikeBasicBlock(SpikeBasicBlock):
    res_module = ImageNetSpikeResModule


res_specials = {BasicBlock: SpikeBasicBlock}
imagenet_res_specials = {BasicBlock: ImageNetSpikeBasicBlock}


# ------------------------------------------------------------------ thresholds (spiking_layer.py)


def lp_loss(pred, tgt, p=2.0, reduction="none"):
    if reduction == "none":
        return (pred - tgt).abs().pow(p).sum(1).mean()
    if reduction == "channel_split":
        return (pred - tgt).abs().pow(p).sum((0, 2, 3))
    return (pred - tgt).abs().pow(p).mean()


def find_threshold_mse(tensor, T=8, channel_wise=True):
    def clip_floor(tensor, T, Vth):
        snn_out = torch.clamp(tensor / Vth * T, min=0, max=T)
        return snn_out.floor() * Vth / T

    if channel_wise and len(tensor.shape) == 4:
        num_channel = tensor.shape[1]
        max_act = torch.ones(num_channel).type_as(tensor)
        for i in range(num_channel):
            max_act[i] = tensor[:, i].max()
        max_act = max_act.reshape(1, num_channel, 1, 1)
        best_score = torch.ones_like(max_act).mul(1e10)
        best_Vth = torch.clone(max_act)
        for i in range(95):
            new_Vth = max_act * (1.0 - (i * 0.01))
            mse = lp_loss(tensor, clip_floor(tensor, T, new_Vth), p=2.0, reduction="channel_split")
            mse = mse.reshape(1, num_channel, 1, 1)
            mask = mse < best_score
            best_score[mask] = mse[mask]
            best_Vth[mask] = new_Vth[mask]
    else:
        max_act = tensor.max()
        best_score = 1e5
        best_Vth = 0
        for i in range(95):
            new_Vth = max_act * (1.0 - (i * 0.01))
            mse = lp_loss(tensor, clip_floor(tensor, T, new_Vth), p=2.0, reduction="other")
            if mse < best_score:
                best_Vth = new_Vth
                best_score = mse
    return best_Vth


class DataSaverHook:
    def __init__(self, momentum=0.9, sim_length=8, mse=True, channel_wise=False):
        self.momentum, self.max_act, self.T, self.mse, self.channel_wise = momentum, None, sim_length, mse, channel_wise

    def __call__(self, module, input_batch, output_batch):
        def get_act_thresh(tensor):
            if self.mse:
                return find_threshold_mse(output_batch, T=self.T, channel_wise=self.channel_wise)
            return tensor.max()

        if self.max_act is None:
            self.max_act = get_act_thresh(output_batch)
        else:
            cur_max = get_act_thresh(output_batch)
            if self.momentum is None:
                self.max_act = self.max_act if self.max_act > cur_max else cur_max
            else:
                self.max_act = self.momentum * self.max_act + (1 - self.momentum) * cur_max
        module.threshold = self.max_act


@torch.no_grad()
def get_maximum_activation(train_loader, model, momentum=0.9, iters=20, sim_length=8, mse=True, channel_wise=False):
    model.set_spike_state(use_spike=False)
    model.eval()
    hooks = [
        m.register_forward_hook(DataSaverHook(momentum, sim_length, mse, channel_wise))
        for m in model.modules()
        if isinstance(m, SpikeModule)
    ]
    for i, (input, target) in enumerate(train_loader):
        _ = model(input)
        if i > iters:
            break
    for h in hooks:
        h.remove()


# ------------------------------------------------------------------ BN folding (fold_bn.py)


def _fold_bn(conv_module, bn_module):
    w = conv_module.weight.data
    y_mean = bn_module.running_mean
    y_var = bn_module.running_var
    safe_std = torch.sqrt(y_var + bn_module.eps)
    w_view = (conv_module.out_channels, 1, 1, 1)
    weight = w * (bn_module.weight / safe_std).view(w_view)
    beta = bn_module.bias - bn_module.weight * y_mean / safe_std
    if conv_module.bias is not None:
        bias = bn_module.weight * conv_module.bias / safe_std + beta
    else:
        bias = beta
    return weight, bias


def search_fold_and_remove_bn(model):
    model.eval()
    prev = None
    for n, m in model.named_children():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and isinstance(prev, (nn.Conv2d, nn.Linear)):
            w, b = _fold_bn(prev, m)
            if prev.bias is None:
                prev.bias = nn.Parameter(b)
            else:
                prev.bias.data = b
            prev.weight.data = w
            setattr(model, n, StraightThrough())
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            prev = m
        else:
            prev = search_fold_and_remove_bn(m)
    return prev


# ------------------------------------------------------------------ calibration (calibration.py)


class _Saver:
    """ActivationSaverHook (accumulate=True) and ActivationSaverHookOneTimeStep (False), output only."""

    def __init__(self, accumulate: bool):
        self.accumulate, self.stored_output = accumulate, None

    def __call__(self, module, input_batch, output_batch):
        if self.stored_output is None:
            self.stored_output = output_batch
        elif self.accumulate:
            self.stored_output = output_batch + self.stored_output


@torch.no_grad()
def _layer_output(model, module, input, accumulate):
    saver = _Saver(accumulate)
    model.eval()
    h = module.register_forward_hook(saver)
    _ = model(input)
    h.remove()
    return saver.stored_output.detach()


def emp_bias_corr(model, module, train_data, correct_mempot=False):
    model.set_spike_state(use_spike=False)
    ann_out = _layer_output(model, module, train_data, True)
    model.set_spike_state(use_spike=True)
    snn_out = _layer_output(model, module, train_data, True)
    snn_out = snn_out / model.T
    if not correct_mempot:
        ann_mean = ann_out.mean(3).mean(2).mean(0).detach() if len(ann_out.shape) == 4 else ann_out.mean(0).detach()
        snn_mean = snn_out.mean(3).mean(2).mean(0).detach() if len(snn_out.shape) == 4 else snn_out.mean(0).detach()
        bias = (snn_mean - ann_mean).data.detach()
        if module.bias is None:
            module.bias = -bias
        else:
            module.bias.data = module.bias.data - bias
    else:
        ann_mean, snn_mean = ann_out.mean(0, keepdim=True), snn_out.mean(0, keepdim=True)
        module.mem_pot_init = ((ann_mean - snn_mean) * model.T).data.detach()


@torch.no_grad()
def bias_corr_model(model, train_loader, correct_mempot=False, num_cali_sample_batches=10):
    for i, (input, target) in enumerate(train_loader):
        if i > num_cali_sample_batches - 1:
            break
        for name, module in model.named_modules():
            if isinstance(module, SpikeModule):
                emp_bias_corr(model, module, input, correct_mempot)


def emp_bias_corr_one_step(model, module, t, train_data, curr_t_alpha=0.5):
    model.set_spike_state(use_spike=False)
    ann_out = _layer_output(model, module, train_data, False)
    model.set_spike_state(use_spike=True)
    snn_out = _layer_output(model, module, train_data, False)
    ann_mean = ann_out.mean(3).mean(2).mean(0).detach() if len(ann_out.shape) == 4 else ann_out.mean(0).detach()
    snn_mean = snn_out.mean(3).mean(2).mean(0).detach() if len(snn_out.shape) == 4 else snn_out.mean(0).detach()
    this_timestep_bias = (snn_mean - ann_mean).data.detach()
    if module.mem_pot.dim() == 4:
        old_t_reshaped_bias = module.time_dependent_biases[t].view(1, -1, 1, 1)
        this_t_reshaped_bias = this_timestep_bias.view(1, -1, 1, 1)
    else:
        old_t_reshaped_bias = module.time_dependent_biases[t].view(1, -1)
        this_t_reshaped_bias = this_timestep_bias.view(1, -1)
    module.mem_pot += snn_out
    module.mem_pot += old_t_reshaped_bias
    new_t_reshaped_bias = old_t_reshaped_bias + curr_t_alpha * this_t_reshaped_bias
    module.mem_pot -= new_t_reshaped_bias
    tmp_spike = (module.mem_pot > module.threshold).float() * module.threshold
    module.mem_pot -= tmp_spike
    module.time_dependent_biases[t] = module.time_dependent_biases[t] + curr_t_alpha * this_timestep_bias


@torch.no_grad()
def bias_corr_model_update_step_by_step(model, train_loader, num_cali_sample_batches=10, curr_t_alpha=0.5):
    for i, (input, target) in enumerate(train_loader):
        if i > num_cali_sample_batches - 1:
            break
        for name, module in model.named_modules():
            if isinstance(module, SpikeModule):
                model.init_membrane_potential()
                for t in range(model.T):
                    emp_bias_corr_one_step(model=model, module=module, t=t, train_data=input, curr_t_alpha=curr_t_alpha)


@torch.no_grad()
def x_bias_corr_model_update_step_by_step(model, train_loader, num_cali_sample_batches=100, curr_t_alpha=0.5):
    for i, (input, target) in enumerate(train_loader):
        for name, module in model.named_modules():
            if isinstance(module, SpikeModule):
                model.set_spike_state(use_spike=False)
                ann_out = _layer_output(model, module, input, False)
                ann_mean = (
                    ann_out.mean(3).mean(2).mean(0).detach() if len(ann_out.shape) == 4 else ann_out.mean(0).detach()
                )
                model.set_spike_state(use_spike=True)
                model.init_membrane_potential()
                for t in range(model.T):
                    snn_out_sum_up_to_t_temp = torch.zeros_like(ann_out).detach()
                    model.init_membrane_potential()
                    for t_temp in range(t + 1):
                        snn_out = _layer_output(model, module, input, False)
                        snn_out_sum_up_to_t_temp += snn_out
                    avg_snn_out_up_to_t = snn_out_sum_up_to_t_temp / (t + 1)
                    avg_mean = (
                        avg_snn_out_up_to_t.mean(3).mean(2).mean(0).detach()
                        if len(avg_snn_out_up_to_t.shape) == 4
                        else avg_snn_out_up_to_t.mean(0).detach()
                    )
                    bias = (avg_mean - ann_mean).data.detach()
                    module.time_dependent_biases[t] = (
                        curr_t_alpha * bias + (1 - curr_t_alpha) * module.time_dependent_biases[t]
                    )
        if i == num_cali_sample_batches:
            break


# ------------------------------------------------------------------ weights calibration (SNN_Calibration)


class ActivationSaverHook:
    """Output and first input of a module, each summed over the calls (one call per time step)."""

    def __init__(self):
        self.stored_output = None
        self.stored_input = None
        self.stored_residual = None

    def __call__(self, module, input_batch, output_batch):
        if self.stored_output is None:
            self.stored_output = output_batch
        else:
            self.stored_output = output_batch + self.stored_output
        if self.stored_input is None:
            self.stored_input = input_batch[0]
        else:
            self.stored_input = input_batch[0] + self.stored_input
        if len(input_batch) == 2:
            if self.stored_residual is None:
                self.stored_residual = input_batch[1].detach()
            else:
                self.stored_residual = input_batch[1].detach() + self.stored_residual
        else:
            if self.stored_residual is None:
                self.stored_residual = 0

    def reset(self):
        self.stored_output = None
        self.stored_input = None
        self.stored_residual = None


class GetLayerInputOutput:
    def __init__(self, model, target_module):
        self.model = model
        self.module = target_module
        self.data_saver = ActivationSaverHook()

    @torch.no_grad()
    def __call__(self, input):
        self.model.eval()
        h = self.module.register_forward_hook(self.data_saver)
        _ = self.model(input)
        h.remove()
        return (
            self.data_saver.stored_input.detach(),
            self.data_saver.stored_output.detach(),
            self.data_saver.stored_residual,
        )


def floor_ste(x):
    return (x.floor() - x).detach() + x


def weights_cali_model(model, train_loader, learning_rate=4e-5, optimize_iter=5000, batch_size=32,
                       num_cali_samples=1024):  # fmt: skip
    data_sample = []
    for input, target in train_loader:
        data_sample += [input]
        if len(data_sample) * data_sample[-1].shape[0] >= num_cali_samples:
            break
    data_sample = torch.cat(data_sample, dim=0)[:num_cali_samples]
    for name, module in model.named_modules():
        if isinstance(module, (SpikeResModule, ImageNetSpikeResModule)):
            weights_cali_res_layer(model, module, data_sample, learning_rate, optimize_iter, batch_size,
                                   num_cali_samples)  # fmt: skip
        elif isinstance(module, SpikeModule):
            weights_cali_layer(model, module, data_sample, learning_rate, optimize_iter, batch_size, num_cali_samples)


def weights_cali_layer(model, module, data_sample, learning_rate=2e-5, optimize_iter=10000, batch_size=32,
                       num_cali_samples=1024, loss_func=lp_loss):  # fmt: skip
    _weights_cali(model, module, data_sample, learning_rate, optimize_iter, batch_size, num_cali_samples,
                  loss_func, residual=False)  # fmt: skip


def weights_cali_res_layer(model, module, data_sample, learning_rate=1e-5, optimize_iter=10000, batch_size=8,
                           num_cali_samples=256, loss_func=lp_loss):  # fmt: skip
    _weights_cali(model, module, data_sample, learning_rate, optimize_iter, batch_size, num_cali_samples,
                  loss_func, residual=True)  # fmt: skip


def _weights_cali(model, module, data_sample, learning_rate, optimize_iter, batch_size, num_cali_samples,
                  loss_func, residual):  # fmt: skip
    """The two official functions' shared body; their only differences are the ``residual`` lines (the
    res layer's ``weight_decay=0`` is Adam's default)."""
    get_out = GetLayerInputOutput(model, module)
    cached_batches = []
    for i in range(int(data_sample.size(0) / batch_size)):
        model.set_spike_state(use_spike=False)
        _, cur_out, _ = get_out(data_sample[i * batch_size : (i + 1) * batch_size])
        get_out.data_saver.reset()
        model.set_spike_state(use_spike=True)
        cur_inp, _, cur_res = get_out(data_sample[i * batch_size : (i + 1) * batch_size])
        get_out.data_saver.reset()
        cached_batches.append((cur_inp.cpu(), cur_out.cpu(), cur_res.cpu() if residual else None))
    cached_inps = torch.cat([x[0] for x in cached_batches])
    cached_inps = cached_inps / model.T
    if residual:
        cached_ress = torch.cat([x[2] for x in cached_batches])
        cached_ress = cached_ress / model.T
    cached_outs = torch.cat([x[1] for x in cached_batches])

    optimizer = torch.optim.Adam([module.weight], lr=learning_rate, weight_decay=0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=optimize_iter, eta_min=0.0)
    model.set_spike_state(use_spike=True)
    for i in range(optimize_iter):
        idx = torch.randperm(num_cali_samples)[:batch_size]
        cur_inp = cached_inps[idx]
        cur_out = cached_outs[idx]
        optimizer.zero_grad()
        module.zero_grad()
        snn_out = module.fwd_func(cur_inp, module.weight, module.bias, **module.fwd_kwargs)
        if residual:
            snn_out = snn_out + cached_ress[idx]
        snn_out = torch.clamp(snn_out / module.threshold * model.T, min=0, max=model.T)
        snn_out = floor_ste(snn_out) * module.threshold / model.T
        err = loss_func(snn_out, cur_out)
        err.backward()
        optimizer.step()
        scheduler.step()


@torch.no_grad()
def snn_logits(snn: SpikeModel, inputs: torch.Tensor) -> torch.Tensor:
    """Per-step logits ``[T, B, classes]`` of the official SNN (validate_model's loop, unsummed)."""
    snn.set_spike_state(use_spike=True)
    snn.eval()
    snn.init_membrane_potential()
    steps = []
    for _ in range(snn.T):
        steps.append(snn.model(inputs))
    return torch.stack(steps)
