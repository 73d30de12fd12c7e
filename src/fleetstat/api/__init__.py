"""``fleetstat serve``'s HTTP side: a FastAPI app built by :func:`create_app`.

One router per area (``auth``, ``hosts``, ``alerts``, ``rounds``, ``monitoring``)
under ``/api/v1``, ``/metrics`` at the root, the generated OpenAPI at ``/openapi.json``.
Routes read through ``fleetstat.store``'s query functions (no SQL here) with
the shared :class:`ServerContext` and the caller's :class:`~fleetstat.auth.Principal`
as dependencies (``deps.py``); the pydantic models in ``models.py`` are the
contract. Nothing here imports ``fleetstat.cli``.
"""

from fleetstat.api.app import create_app
from fleetstat.api.deps import ServerContext

__all__ = ["ServerContext", "create_app"]
