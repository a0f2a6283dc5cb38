"""``secureflow.client``: the short name of the API client, `secureflow.api.client` itself.

The distribution maps this folder to ``secureflow.client`` (pyproject.toml: ``package-dir``). Importing it
puts the one client package and its modules in ``sys.modules`` under the short name too, so
``secureflow.client.Client is secureflow.api.client.Client`` and no module is ever loaded twice (two copies
would make two sets of error and model classes that do not match each other).
"""

from __future__ import annotations

import sys

from secureflow.api.client import *  # noqa: F403 - the same names, for type checkers and readers
from secureflow.api.client import __all__ as __all__

_SHORT, _LONG = "secureflow.client", "secureflow.api.client"
for _name, _module in list(sys.modules.items()):
    if _name == _LONG or (_name.startswith(_LONG + ".") and not _name.startswith(_LONG + "._alias")):
        sys.modules[_SHORT + _name[len(_LONG) :]] = _module
