"""Checkpoints load with weights_only=True; pickles that would run code are refused."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from helpers.checkpoints import MarkerPayload
from mtdense.engine import UnsafeCheckpointError, safe_load
from mtdense.engine.hooks.safe_checkpoint_hook import SafeCheckpointHook, from_plain, to_plain


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    evil = MarkerPayload(marker)
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'payload': evil}, path)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        safe_load(path)
    assert not marker.exists(), 'loading executed code from the checkpoint'


def test_plain_pickle_file_refused_too(tmp_path):
    marker = tmp_path / 'pwned2'
    evil = MarkerPayload(marker)
    path = tmp_path / 'evil.pkl'
    with open(path, 'wb') as f:
        pickle.dump(evil, f)
    with pytest.raises(UnsafeCheckpointError):
        safe_load(path)
    assert not marker.exists()


def test_mmengine_loader_is_routed_through_safe_load(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    marker = tmp_path / 'pwned3'
    evil = MarkerPayload(marker)
    path = tmp_path / 'evil2.pth'
    torch.save({'meta': evil}, path)
    with pytest.raises(UnsafeCheckpointError):
        _load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


def test_history_buffer_and_numpy_round_trip(tmp_path):
    hb = HistoryBuffer([1.0, 2.0, 3.5], [1, 1, 2], max_length=7)
    ckpt = {'state_dict': {'w': torch.ones(2)},
            'meta': {'seed': np.int64(3), 'arr': np.arange(4, dtype=np.float32),
                     'message_hub': {'log_scalars': {'loss': hb}}}}
    hook = SafeCheckpointHook()
    hook.before_save_checkpoint(None, ckpt)
    path = tmp_path / 'ok.pth'
    torch.save(ckpt, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    loaded = safe_load(path)
    hook.after_load_checkpoint(None, loaded)
    hb2 = loaded['meta']['message_hub']['log_scalars']['loss']
    assert isinstance(hb2, HistoryBuffer)
    assert np.allclose(hb2.data[0], hb.data[0]) and np.allclose(hb2.data[1], hb.data[1])
    assert hb2.max_length == 7
    assert loaded['meta']['seed'] == 3
    assert np.array_equal(loaded['meta']['arr'], np.arange(4, dtype=np.float32))


def test_to_plain_is_inverse_of_from_plain():
    obj = {'a': [np.float32(1.5), (np.arange(3),)], 'b': 'x'}
    back = from_plain(to_plain(obj))
    assert back['a'][0] == 1.5 and np.array_equal(back['a'][1][0], np.arange(3)) and back['b'] == 'x'


def test_safetensors_and_missing_file(tmp_path):
    from safetensors.torch import save_file
    save_file({'w': torch.arange(3.0)}, str(tmp_path / 'w.safetensors'))
    assert torch.equal(safe_load(tmp_path / 'w.safetensors')['w'], torch.arange(3.0))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        safe_load(tmp_path / 'nope.pth')
