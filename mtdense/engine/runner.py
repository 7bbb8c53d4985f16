"""``MTDenseRunner``: mmengine's ``Runner`` with strict checkpoint loading.

mmengine loads ``load_from`` / ``resume`` checkpoints non-strictly and only logs the
keys that did not match, so a checkpoint of another model (other tasks, classes or
embedding width) was evaluated as a half-random model with exit status 0. Here a
checkpoint must match the model exactly (keys and shapes) unless the config sets
``load_strict = False`` (``--non-strict`` in the tools); the error names the file and
lists the differences (:func:`mtdense.engine.checkpoint.load_model_state`).
"""
from __future__ import annotations

from typing import Callable, Union

from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

from mtdense.registry import RUNNERS
from .checkpoint import load_model_state, model_state_from_checkpoint

__all__ = ['MTDenseRunner', 'build_runner']


@RUNNERS.register_module()
class MTDenseRunner(Runner):
    """mmengine ``Runner`` whose checkpoint loading is strict by default.

    Config key ``load_strict`` (default True): False loads the matching keys of a
    ``load_from`` checkpoint and logs the missing / unexpected / mis-shaped ones.
    """

    load_strict: bool = True

    @classmethod
    def from_cfg(cls, cfg: Config) -> 'MTDenseRunner':
        runner = super().from_cfg(cfg)
        runner.load_strict = bool(cfg.get('load_strict', True))
        return runner

    def load_checkpoint(self, filename: str, map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False, revise_keys: list = [(r'^module.', '')]):
        """Load ``filename`` into the model (strictly unless ``load_strict`` is False).

        ``revise_keys`` is accepted for mmengine compatibility; the only revision
        applied is the removal of a DDP ``module.`` prefix.
        """
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        # mmengine's contract: hooks see the checkpoint before the model does
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        state = model_state_from_checkpoint(checkpoint, filename)
        diff = load_model_state(model, state, filename, strict=strict or self.load_strict)
        if any(diff.values()):
            self.logger.warning(
                f'load_strict=False: {filename} loaded partially: '
                f'{len(diff["missing"])} missing keys keep their initial values '
                f'(first: {diff["missing"][:5]}), {len(diff["unexpected"])} unexpected keys '
                f'(first: {diff["unexpected"][:5]}) and {len(diff["mismatched"])} mis-shaped '
                f'keys (first: {diff["mismatched"][:3]}) were ignored')
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint


def build_runner(cfg: Config) -> Runner:
    """The config's ``runner_type`` (default :class:`MTDenseRunner`) built from ``cfg``."""
    runner_cls = RUNNERS.get(cfg.get('runner_type', 'MTDenseRunner'))
    if runner_cls is None:
        raise KeyError(f'runner_type {cfg.get("runner_type")!r} is not a registered runner')
    return runner_cls.from_cfg(cfg)
