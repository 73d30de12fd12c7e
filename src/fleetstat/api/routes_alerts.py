"""``/api/v1/alerts``: what fires now (``fleetstat alerts``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from fleetstat.alerts import active_alerts
from fleetstat.api import models
from fleetstat.api.deps import Context, User

router = APIRouter(tags=["alerts"], responses={401: {"model": models.Error}})


@router.get("/alerts", response_model=models.AlertList)
def alerts(context: Context, _user: User, pending: bool = False) -> dict[str, Any]:
    """Firing alerts of the configured hosts, oldest first; ``pending=true`` adds
    those still waiting for their ``for=`` count."""
    found = active_alerts(context.store, context.config, pending=pending)
    return {"items": [alert.as_json() for alert in found]}
