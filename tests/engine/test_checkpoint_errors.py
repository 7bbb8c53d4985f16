"""Checkpoint read errors name the file and say what is wrong with it.

Only ``safe_load`` / ``check_checkpoint_safe`` (which exist on the code before the fix)
and mmengine's / mtdense's loaders are used, and the messages are checked, so these
tests fail there for the right reason: torch's ``EOFError`` / "failed finding central
directory" / ``KeyError`` named no file, and garbage was reported as unsafe.
"""
from __future__ import annotations

import io
import os
import os.path as osp
import pickle
import zipfile

import pytest
import torch

from mtdense.engine.checkpoint import check_checkpoint_safe, safe_load


def _ckpt_bytes(n: int = 20000, seed: int = 0) -> bytes:
    g = torch.Generator().manual_seed(seed)
    buf = io.BytesIO()
    torch.save({'state_dict': {'w': torch.randn(n, generator=g)}, 'meta': {'iter': seed}}, buf)
    return buf.getvalue()


def _raises_naming(path, *words: str, kind: str = 'CorruptCheckpointError') -> Exception:
    for load in (safe_load, check_checkpoint_safe):
        with pytest.raises(Exception) as info:
            load(path)
        msg = str(info.value)
        assert str(path) in msg, f'{load.__name__}: the error does not name the file: {msg!r}'
        for w in words:
            assert w in msg, f'{load.__name__}: {w!r} not in {msg!r}'
        assert type(info.value).__name__ == kind, f'{load.__name__}: {info.value!r}'
    return info.value


def test_empty_file(tmp_path):
    path = tmp_path / 'iter_8.pth'
    path.write_bytes(b'')
    assert _raises_naming(path, 'empty').kind == 'empty'


@pytest.mark.parametrize('frac', [1e-9, 0.001, 0.5, 0.999])
def test_truncated_zip_checkpoint(tmp_path, frac):
    data = _ckpt_bytes()
    path = tmp_path / 'iter_8.pth'
    path.write_bytes(data[:max(1, int(frac * len(data)))])
    assert _raises_naming(path, 'truncated').kind == 'truncated'


def test_truncated_legacy_checkpoint(tmp_path):
    buf = io.BytesIO()
    torch.save({'w': torch.ones(100)}, buf, _use_new_zipfile_serialization=False)
    path = tmp_path / 'old.pth'
    path.write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
    _raises_naming(path, 'truncated')


@pytest.mark.parametrize('content', [b'hello, not a checkpoint\n', b'{"iter": 8}',
                                     bytes(range(256)) * 4, b'\x89PNG\r\n\x1a\n' + b'\0' * 64])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / 'iter_8.pth'
    path.write_bytes(content)
    assert _raises_naming(path, 'not a checkpoint').kind == 'not_a_checkpoint'


def test_plain_data_pickle_and_foreign_zip(tmp_path):
    path = tmp_path / 'data.pth'
    path.write_bytes(pickle.dumps({'a': [1, 2, 3]}))
    _raises_naming(path, 'not a checkpoint', 'pickle.dump')
    path = tmp_path / 'archive.pth'
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr('readme.txt', 'hello')
    _raises_naming(path, 'not a checkpoint', 'data.pkl')


def test_damaged_tensor_data_fails_the_crc_check(tmp_path):
    data = bytearray(_ckpt_bytes())
    # the tensor's 80 kB sit in the middle of the file: damage them, keep the zip valid
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / 'iter_8.pth'
    path.write_bytes(bytes(data))
    # torch alone loads it, with a wrong number and no error
    torch.load(path, weights_only=True)
    assert _raises_naming(path, 'CRC-32').kind == 'corrupt'


def test_checkpoint_without_crc_still_loads(tmp_path):
    torch.serialization.set_crc32_options(False)
    try:
        torch.save({'w': torch.arange(5.0)}, tmp_path / 'nocrc.pth')
    finally:
        torch.serialization.set_crc32_options(True)
    check_checkpoint_safe(tmp_path / 'nocrc.pth')
    assert torch.equal(safe_load(tmp_path / 'nocrc.pth')['w'], torch.arange(5.0))


class _Evil:
    def __reduce__(self):
        return (os.system, ('true',))


def test_unsafe_files_are_still_refused_as_unsafe(tmp_path):
    torch.save({'x': _Evil()}, tmp_path / 'evil.pth')
    _raises_naming(tmp_path / 'evil.pth', 'refused', kind='UnsafeCheckpointError')
    for protocol in (0, 2, 4):
        path = tmp_path / f'evil{protocol}.pkl'
        path.write_bytes(pickle.dumps(_Evil(), protocol=protocol))
        _raises_naming(path, 'refused', 'system', kind='UnsafeCheckpointError')


def test_mmengine_loader_reports_the_same_error(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'iter_8.pth'
    path.write_bytes(_ckpt_bytes()[:1000])
    with pytest.raises(Exception, match='iter_8.pth: truncated'):
        _load_checkpoint(str(path), map_location='cpu')


def test_init_model_reports_a_truncated_checkpoint(tmp_path):
    from mtdense.apis import init_model
    path = tmp_path / 'iter_8.pth'
    path.write_bytes(_ckpt_bytes()[:1000])
    config = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'tests',
                      'tiny_vmt_synthetic.py')
    with pytest.raises(Exception, match='iter_8.pth: truncated'):
        init_model(config, str(path), device='cpu')


def test_truncated_safetensors_and_error_pickling(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / 'w.safetensors'
    save_file({'w': torch.arange(1000.0)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(Exception) as info:
        safe_load(path)
    assert str(path) in str(info.value) and 'safetensors' in str(info.value)
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value) and copy.kind == info.value.kind == 'corrupt'
