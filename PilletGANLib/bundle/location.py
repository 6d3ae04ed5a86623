"""Where the bundle is: the folder of the configs MONAI is parsing, whatever the working directory."""

from __future__ import annotations

import inspect
from pathlib import Path

from monai.bundle import ConfigWorkflow

__all__ = ["bundle_root"]


def bundle_root(default: str = ".") -> str:
    """The bundle folder of the :class:`~monai.bundle.ConfigWorkflow` whose configs are being parsed, else ``default``.

    ``monai.bundle.load``, ``monai.bundle run`` and ``ConfigWorkflow(config_file=...)`` all parse the configs inside
    a ``ConfigWorkflow`` that knows the config file's folder; the bundle is that folder's parent (the rule
    ``ConfigWorkflow.run`` applies when it puts the bundle on ``sys.path``). The configs' ``bundle_root`` default
    calls this so that ``models/model.pt`` is the bundle's own from any working directory. Tools that parse a
    config without a workflow (``ckpt_export``, ``verify_net_in_out``) get ``default``, i.e. MONAI's convention:
    run them in the bundle folder or pass ``--bundle_root``. An explicit ``bundle_root`` override always wins.
    """
    frame = inspect.currentframe()
    try:
        while frame is not None:
            workflow = frame.f_locals.get("self")
            if isinstance(workflow, ConfigWorkflow) and hasattr(workflow, "config_root_path"):
                configs = Path(workflow.config_root_path)
                return str((configs.parent if configs.name == "configs" else configs).resolve())
            frame = frame.f_back
    finally:
        del frame
    return default
