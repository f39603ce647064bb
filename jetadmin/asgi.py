"""ASGI entry point: one ``ProtocolTypeRouter`` serving HTTP (Django) and websockets (Channels).

HTTP goes to Django's *WSGI* handler, run by a2wsgi in a pool of ``JETADMIN_WEB_THREADS`` threads per
process, not to Django's ASGI handler. Every view here is synchronous, and the ASGI handler runs each
request through ``sync_to_async`` in a thread of its own: measured under uvicorn on this project, 5.0
ms of CPU for ``/healthz`` and 7.9 ms for an authenticated request that writes a row, against 1.3 and
4.3 ms through the thread pool (README "Sizing"). Websockets stay on Channels.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jetadmin.settings")

# Django must be set up before anything imports models (the websocket routes do).
django_wsgi_app = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from jetadmin.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": WSGIMiddleware(django_wsgi_app, workers=settings.JETADMIN_WEB_THREADS),  # type: ignore[arg-type]
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
