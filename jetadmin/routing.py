"""Websocket routes. The single endpoint ``/ws/`` carries ``{event, data}`` messages (CONTRACT)."""

from django.urls import path

from jetadmin.consumers import EventsConsumer

websocket_urlpatterns = [
    path("ws/", EventsConsumer.as_asgi()),
]
