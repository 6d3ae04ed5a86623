"""Auxiliary priors of the lesion map: the learned lung-field model and the opacity-location template.

Both are small models beside the GAN, saved as their own ``.pt`` + ``.json`` files (checksummed like a
model) and named by a model card under ``lung_fields`` and ``opacity_prior``. The
:class:`~PilletGANLib.localization.Localizer` draws them into the map when its recipe asks for them
(``lung_prior``, ``opacity_prior``). Fitting them on SIIM data (``pilletgan prior lung-fields|opacity-template``)
is in :mod:`PilletGANLib.priors.training` and :mod:`PilletGANLib.priors.siim`.
"""

from .lung_fields import LUNG_FIELD_INPUT_SIZE, LungFieldEstimator, LungFieldNet, lung_box_prior
from .opacity_template import EXTENT, OpacityTemplate, fit_opacity_template, warp_opacity_template

__all__ = [
    "EXTENT",
    "LUNG_FIELD_INPUT_SIZE",
    "LungFieldEstimator",
    "LungFieldNet",
    "OpacityTemplate",
    "fit_opacity_template",
    "lung_box_prior",
    "warp_opacity_template",
]
