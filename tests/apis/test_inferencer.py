"""MTDenseInferencer: batching equals one by one, EXIF, lists and folders, outputs, names."""
import os
import os.path as osp
import types

import numpy as np
import pytest
from PIL import Image

from helpers.tiny_model import image_path


@pytest.fixture(scope='module')
def setup(tiny_setup, tmp_path_factory):
    """``tiny_setup`` with ``photos``: a folder of 3 sizes of one scene and an EXIF portrait."""
    photos = tmp_path_factory.mktemp('photos')
    base = np.asarray(Image.open(image_path(tiny_setup)))
    for i in range(3):  # three sizes: batches must split by input size
        img = Image.fromarray(base).resize((64 - 8 * i, 48 - 4 * i))
        img.save(photos / f'p{i}.png')
    exif_img = Image.fromarray(base)
    exif = exif_img.getexif()
    exif[0x0112] = 6  # displayed turned 90° clockwise
    exif_img.save(photos / 'portrait.jpg', exif=exif, quality=95)
    return dict(tiny_setup, photos=str(photos))


@pytest.fixture(scope='module')
def inferencer(setup):
    from mtdense.apis import MTDenseInferencer
    return MTDenseInferencer(setup['config'], setup['checkpoint'])


def test_batched_equals_one_by_one_and_streams(setup, inferencer):
    from mtdense.apis import inference_model
    one = inferencer(setup['photos'], batch_size=1)
    four = inferencer(setup['photos'], batch_size=4)
    assert [r['name'] for r in one] == ['p0', 'p1', 'p2', 'portrait']  # folder, sorted
    for a, b in zip(one, four):
        for task, arr in a['predictions'].items():
            np.testing.assert_allclose(b['predictions'][task], arr, rtol=1e-5, atol=1e-5)
    # the same numbers as the functional API on the same file
    ref = inference_model(inferencer.model, osp.join(setup['photos'], 'p1.png'))
    np.testing.assert_allclose(one[1]['predictions']['depth'], ref['depth'], rtol=1e-5)
    # stream: a generator, results one at a time
    gen = inferencer.stream([osp.join(setup['photos'], 'p0.png')], batch_size=2)
    assert isinstance(gen, types.GeneratorType) and next(gen)['name'] == 'p0'


def test_inputs_sizes_exif_and_arrays(setup, inferencer):
    rgb = np.asarray(Image.open(osp.join(setup['photos'], 'p2.png')))
    res = inferencer([osp.join(setup['photos'], 'portrait.jpg'), rgb], batch_size=2)
    assert res[0]['predictions']['semseg'].shape == (64, 48)  # upright: stored 48 x 64
    assert res[1]['name'] == 'array_1' and res[1]['path'] is None
    assert res[1]['predictions']['normals'].shape == rgb.shape[:2] + (3,)
    with pytest.raises(FileNotFoundError, match='neither an image file nor a folder'):
        inferencer('no/such/file.png')
    with pytest.raises(ValueError, match='batch_size'):
        inferencer(rgb, batch_size=0)


def test_outputs_compact_raw_and_skip(setup, inferencer, tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    for name in ('a.png', 'c.png'):
        Image.open(osp.join(setup['photos'], 'p0.png')).save(folder / name)
    (folder / 'b.png').write_bytes(b'broken')
    res = inferencer(str(folder), batch_size=3, out_dir=str(tmp_path / 'out'), save_raw=True,
                     on_error='skip')
    assert [r['name'] for r in res] == ['a', 'b', 'c'] and 'error' in res[1]
    assert sorted(os.listdir(tmp_path / 'out')) == ['a.npz', 'a.png', 'c.npz', 'c.png']
    with np.load(tmp_path / 'out' / 'a.npz') as raw:
        assert raw['semseg'].dtype == np.uint8 and raw['depth'].dtype == np.float16
        np.testing.assert_array_equal(raw['semseg'], res[0]['predictions']['semseg'])
    with pytest.raises(ValueError, match='b.png'):
        inferencer(str(folder), batch_size=3)


def test_config_by_name_from_another_directory(tmp_path, monkeypatch):
    from mtdense.utils.config_names import list_configs, resolve_config
    monkeypatch.chdir(tmp_path)
    path = resolve_config('vmt/vmt_swin-t_pascal-mt')
    assert path.endswith(osp.join('configs', 'vmt', 'vmt_swin-t_pascal-mt.py'))
    assert resolve_config('mtdense::demo/vmt') == resolve_config('demo/vmt.py')
    assert 'mtlora/mtlora_swin-t_nyud-mt' in list_configs()
    assert not any(n.startswith('_base_') for n in list_configs())
    with pytest.raises(FileNotFoundError, match='did you mean vmt/vmt_swin-t_pascal-mt'):
        resolve_config('vmt/vmt_swin-t_pascal')
