"""Middleware that writes one audit-log row for every state-changing API request (never its body)."""

from __future__ import annotations

import logging

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import get_settings
from app.db.models import AuditEntry
from app.db.session import session_scope
from app.services.system import audit

log = logging.getLogger(__name__)

AUDITED_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# POSTs that change nothing: a prediction per row of traffic would flood the log and slow serving.
READ_ONLY_ACTIONS = {"deployment:predict"}


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in AUDITED_METHODS:
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            # In a worker thread, in a transaction of its own: a write waiting for the database's write lock
            # must not hold the event loop (every other request, /health included, would wait with it).
            # Shielded, so a client that hangs up still leaves its audit entry.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._record, scope, status["code"])

    @staticmethod
    def _record(scope: Scope, status_code: int) -> None:
        state = scope.get("state") or {}
        if state.get("permission") in READ_ONLY_ACTIONS or state.get("audit") is False:
            return
        params = scope.get("path_params") or {}
        client = scope.get("client")
        entry = AuditEntry(
            user_id=state.get("user_id"),
            username=str(state.get("username", ""))[:64],
            method=scope["method"],
            path=scope["path"][:512],
            action=str(state.get("permission", ""))[:64],
            target=",".join(f"{k}={v}" for k, v in sorted(params.items()))[:256],
            status_code=status_code,
            result="success" if status_code < 400 else "failure",
            message=str(state.get("audit_message", ""))[:512],
            client_ip=(client[0] if client else "")[:64],
        )
        try:
            with session_scope(get_settings().database_url) as session:
                audit.record(session, entry)
        except Exception:  # the audit write must not turn a done request into an error
            log.exception("Could not write the audit log entry for %s %s", entry.method, entry.path)
