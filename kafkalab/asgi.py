"""ASGI entry point: HTTP through Django, websockets through Channels, and the lab runner.

The lab runner listens on the "lab-runner" channel. In the classroom deployment it runs as its
own process (`manage.py runworker lab-runner`); in the embedded default it is started inside
this process on first use, so one code path serves both.
"""

import os

from django.core.asgi import get_asgi_application

from kafkalab.checks import require_secret_key

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kafkalab.settings")
django_asgi_app = get_asgi_application()
require_secret_key()  # daphne and runworker refuse to serve without a key (debug off)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from kafkalab.routing import websocket_urlpatterns  # noqa: E402
from kafkalab.runner.consumer import LabRunner  # noqa: E402
from kafkalab.runner.embedded import EmbeddedRunner  # noqa: E402
from kafkalab.runner.protocol import RUNNER_CHANNEL  # noqa: E402

protocols = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        "channel": ChannelNameRouter({RUNNER_CHANNEL: LabRunner.as_asgi()}),
    }
)

application = EmbeddedRunner(protocols)
