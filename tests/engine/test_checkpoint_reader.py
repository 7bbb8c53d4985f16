"""The one checkpoint reader (mtdense.checkpoint) and its users."""
import pytest
import torch

import mtdense.engine as engine
from mtdense.checkpoint import (CheckpointMismatchError, CorruptCheckpointError, read_state_dict,
                                safe_load, state_dict_from)


def _sd():
    return {'a.weight': torch.ones(2, 2), 'b': torch.zeros(3)}


@pytest.mark.parametrize('wrap', [lambda s: s, lambda s: {'state_dict': s, 'meta': {'x': 1}},
                                  lambda s: {'model': s}, lambda s: {'module': s},
                                  lambda s: {'state_dict': {f'module.{k}': v
                                                            for k, v in s.items()}}])
def test_state_dict_from_unwraps(wrap):
    out = state_dict_from(wrap(_sd()), 'x.pth')
    assert list(out) == ['a.weight', 'b']


def test_state_dict_from_errors_name_the_source():
    with pytest.raises(CheckpointMismatchError, match=r'x\.pth: not a model checkpoint.*got list'):
        state_dict_from([1, 2], 'x.pth')
    with pytest.raises(CheckpointMismatchError, match=r"x\.pth: .*\['meta'\] are not tensors"):
        state_dict_from({'meta': {}, 'w': torch.ones(1)}, 'x.pth')


def test_one_error_class_everywhere():
    from mtdense.models.backbones import CheckpointMismatchError as backbone_error
    assert engine.CheckpointMismatchError is CheckpointMismatchError is backbone_error
    assert engine.safe_load is safe_load
    assert engine.CorruptCheckpointError is CorruptCheckpointError


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_read_state_dict_files(tmp_path, suffix):
    path = str(tmp_path / f'w{suffix}')
    if suffix == '.pth':
        torch.save({'state_dict': _sd()}, path)
    else:
        from safetensors.torch import save_file
        save_file(_sd(), path)
    out = read_state_dict(path)
    assert sorted(out) == ['a.weight', 'b'] and torch.equal(out['a.weight'], torch.ones(2, 2))


def test_backbone_and_cnn_weights_go_through_the_reader(tmp_path):
    from mtdense.models.backbones.checkpoint import read_state_dict as backbone_read
    from mtdense.models.backbones.conv_multitask import load_timm_state_dict
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    good = tmp_path / 'good.pth'
    torch.save(_sd(), good)
    truncated = tmp_path / 'cut.pth'
    truncated.write_bytes(good.read_bytes()[:100])
    for path, kind in ((empty, 'empty'), (truncated, 'truncated')):
        with pytest.raises(CorruptCheckpointError, match=str(path)) as err:
            backbone_read(str(path))
        assert err.value.kind == kind
        with pytest.raises(CorruptCheckpointError, match=str(path)):
            load_timm_state_dict(torch.nn.Linear(1, 1), str(path))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        backbone_read(str(tmp_path / 'missing.pth'))
