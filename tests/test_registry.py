"""Registries: mtdense scope is a child of mmseg's, and mmseg modules build through it."""
from mmengine import DefaultScope

from mtdense.registry import HOOKS, MODELS


def test_registry_hierarchy_and_scope():
    from mmseg.registry import MODELS as MMSEG_MODELS
    assert MODELS.parent is MMSEG_MODELS
    assert MODELS.scope == 'mtdense'


def test_register_all_modules_sets_scope_and_builds_across_scopes():
    from mtdense.utils import register_all_modules
    register_all_modules()
    assert DefaultScope.get_current_instance().scope_name == 'mtdense'
    # an mmseg module, found through the mtdense registry's parent
    neck = MODELS.build(dict(type='MultiLevelNeck', in_channels=[8, 8], out_channels=8,
                             scales=[1, 2]))
    assert type(neck).__name__ == 'MultiLevelNeck'
    # an mtdense module
    hook = HOOKS.build(dict(type='SafeCheckpointHook'))
    assert type(hook).__name__ == 'SafeCheckpointHook'
