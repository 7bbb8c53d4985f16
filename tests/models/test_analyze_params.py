"""tools/analyze_params.py on tiny configs (test backbone and a tiny adapted Swin)."""
import importlib.util
import json
import os.path as osp

import pytest
import torch.nn as nn
from mmengine.model import BaseModule

from mtdense.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'analyze_params', osp.join(ROOT, 'tools', 'analyze_params.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@MODELS.register_module(force=True)
class _ParamTestBackbone(BaseModule):
    """Two-level-per-stage conv pyramid; the first conv is frozen."""

    def __init__(self, tasks, channels=(4, 8, 8, 8)):
        super().__init__()
        self.tasks = list(tasks)
        self.out_channels = list(channels)
        prev, convs = 3, []
        for i, c in enumerate(channels):
            convs.append(nn.Conv2d(prev, c, 3, stride=4 if i == 0 else 2, padding=1))
            prev = c
        self.convs = nn.ModuleList(convs)
        for p in self.convs[0].parameters():
            p.requires_grad_(False)

    def forward(self, x):
        feats = []
        for conv in self.convs:
            x = conv(x)
            feats.append(x)
        return {t: feats for t in self.tasks}


TINY_CFG = """
model = dict(
    type='MultiTaskDenseModel',
    tasks=['semseg', 'depth'],
    num_classes=3,
    backbone=dict(type='_ParamTestBackbone'),
    heads=dict(type='LightMultiScaleHead', channels=4))
"""


def test_generic_backbone_counts(tmp_path, capsys):
    cfg = tmp_path / 'tiny.py'
    cfg.write_text(TINY_CFG)
    out_json = tmp_path / 'r.json'
    report = load_tool().main([str(cfg), '--json', str(out_json)])
    table = capsys.readouterr().out
    assert 'trainable parameters' in table and 'task semseg' in table

    bb_total = 3 * 4 * 9 + 4 + 4 * 8 * 9 + 8 + 2 * (8 * 8 * 9 + 8)
    frozen = 3 * 4 * 9 + 4

    def head(c_out):  # 4 reducers (Cin*4+4), fuse 16->4 conv without bias + BN, predictor
        return (4 * 4 + 4) + 3 * (8 * 4 + 4) + 16 * 4 + 2 * 4 + (4 * c_out + c_out)

    assert report['backbone_params'] == bb_total
    assert report['backbone_side_trainable'] == bb_total - frozen
    assert report['per_task_trainable']['semseg']['head'] == head(3)
    assert report['per_task_trainable']['depth']['head'] == head(1)
    assert report['per_task_trainable']['depth']['backbone'] is None  # no per-task info
    assert report['total'] == bb_total + head(3) + head(1)
    assert report['trainable'] == report['total'] - frozen
    assert report['trainable_percent_of_backbone'] == pytest.approx(
        100 * report['trainable'] / bb_total)
    assert json.loads(out_json.read_text()) == json.loads(json.dumps(report))


def test_cfg_options_and_missing_num_classes(tmp_path, capsys):
    cfg = tmp_path / 'tiny.py'
    cfg.write_text(TINY_CFG)
    tool = load_tool()
    report = tool.main([str(cfg), '--cfg-options', 'model.tasks=[depth,normals]', '--json', '-'])
    assert list(report['per_task_trainable']) == ['depth', 'normals']
    assert json.loads(capsys.readouterr().out)['tasks'] == ['depth', 'normals']
    with pytest.raises(SystemExit, match='need the number of classes'):
        tool.main([str(cfg), '--cfg-options', 'model.num_classes=None'])


def test_adapted_swin_vmt_report(tmp_path):
    cfg = tmp_path / 'swin.py'
    cfg.write_text(f"""
_base_ = [{osp.join(ROOT, 'configs/_base_/models/swin_t_mmseg_vmt.py')!r}]
model = dict(
    tasks=['semseg', 'normals'], num_classes=4,
    backbone=dict(backbone=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2),
                                window_size=2),
                  peft=dict(bottleneck=4)),
    heads=dict(channels=8))
""")
    report = load_tool().main([str(cfg)])
    assert report['method'] == 'VMTAdapter'
    assert report['backbone_trainable'] == 0  # the Swin weights stay frozen
    assert report['backbone_side_trainable'] == report['method_trainable'] > 0
    per_task_bb = [report['per_task_trainable'][t]['backbone'] for t in ('semseg', 'normals')]
    assert per_task_bb[0] == per_task_bb[1] > 0  # one scale-shift KEM per task
    assert report['shared_trainable'] == report['method_trainable'] - sum(per_task_bb)
    assert report['trainable'] == report['method_trainable'] + report['heads_trainable']


METHOD_CONFIGS = sorted(
    f for f in __import__('os').listdir(osp.join(ROOT, 'configs/_base_/models'))
    if f.startswith('swin_t_mmseg_') and f.endswith('.py'))


def test_method_config_list():
    names = {f[len('swin_t_mmseg_'):-3] for f in METHOD_CONFIGS}
    assert {'vmt', 'vmt_lite', 'full_ft', 'single_task_ft', 'decoder_only', 'bitfit',
            'per_task_adapter', 'per_task_lora', 'mtlora'} <= names


@pytest.mark.parametrize('name', METHOD_CONFIGS)
def test_method_configs_build(name, tmp_path):
    """Every model config builds (shrunk to a tiny Swin) and reports its method."""
    from mmengine.config import Config
    path = osp.join(ROOT, 'configs/_base_/models', name)
    peft_type = Config.fromfile(path).model.backbone.peft.type
    import mtdense.models  # noqa: F401
    if MODELS.get(peft_type) is None:
        pytest.skip(f'PETL method {peft_type} is not registered (yet)')
    report = load_tool().main([
        path, '--num-classes', '3', '--cfg-options', 'model.tasks=[semseg,depth]',
        'model.backbone.backbone.embed_dims=16', 'model.backbone.backbone.depths=[1,1,1,1]',
        'model.backbone.backbone.num_heads=[1,1,2,2]', 'model.backbone.backbone.window_size=2',
        'model.heads.channels=8' if 'uperhead' not in name else 'model.heads.head.channels=8'])
    assert report['method'] == peft_type
    assert report['trainable'] > 0


@pytest.mark.parametrize('config,method', [
    ('configs/_base_/models/mobilenetv2_modulation.py', 'ModulationAdapter'),
    ('configs/_base_/models/mobilenetv2_depthwise_sharing.py', 'DepthwiseSharing'),
])
def test_analyze_params_covers_conv_seed_methods(config, method, tmp_path):
    tool = load_tool()
    out = tmp_path / 'report.json'
    report = tool.main([osp.join(ROOT, config), '--num-classes', '21', '--cfg-options',
                        'model.backbone.backbone.model_name=mobilenetv2_050',
                        '--json', str(out)])
    assert report['method'] == method
    assert report['backbone_trainable'] == 0  # the base CNN is frozen
    assert report['method_trainable'] > 0
    per_task = {t: v['backbone'] for t, v in report['per_task_trainable'].items()}
    assert len(set(per_task.values())) == 1 and next(iter(per_task.values())) > 0
    assert json.loads(out.read_text())['method'] == method
