"""The emulated Campaign Monitor API v3.3 resources, as request → response functions.

:class:`Api` routes a :class:`Ctx` to a resource and returns its :class:`Result`; the HTTP server
(:mod:`cmtoolkit.emulator.server`) does the authentication, faults and serialisation around it.
"""

from cmtoolkit.emulator.api.paging import PageCache
from cmtoolkit.emulator.api.request import Ctx, Result
from cmtoolkit.emulator.api.routes import Api

__all__ = ["Api", "Ctx", "PageCache", "Result"]
