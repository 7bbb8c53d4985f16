"""Registration entry point, mirroring ``mmseg.utils.register_all_modules``."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mtdense (and mmseg) module so their registries are filled.

    Args:
        init_default_scope: make ``mtdense`` the default scope, so config ``type``
            names resolve in mtdense first, then mmseg, then mmengine.
    """
    import mmseg.datasets  # noqa: F401
    import mmseg.engine  # noqa: F401
    import mmseg.evaluation  # noqa: F401
    import mmseg.models  # noqa: F401
    import mmseg.structures  # noqa: F401

    import mtdense.datasets  # noqa: F401
    import mtdense.engine  # noqa: F401
    import mtdense.evaluation  # noqa: F401
    import mtdense.models  # noqa: F401
    import mtdense.visualization  # noqa: F401

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('mtdense'):
        DefaultScope.get_instance('mtdense', scope_name='mtdense')
    elif current.scope_name != 'mtdense':
        warnings.warn(f'The current default scope "{current.scope_name}" is not "mtdense"; '
                      'register_all_modules switches it to "mtdense".')
        DefaultScope.get_instance(f'mtdense-{datetime.datetime.now()}', scope_name='mtdense')
