"""SIGHUP: read the configuration file again and put its TLS files and peer names in force.

What a reload replaces, for the connections made after it (established ones stay up):

- each agency's 速報 link (``[cvs.link]`` / ``[[cvs.agencies]] link``): the ``[tls]``
  certificate and key, the link's CA, and ``peers``;
- the MPN link (``[mpn]``): the ``[tls]`` certificate and key, ``mpn.ca`` and ``hostname``;
- the mail relay (``[mail]``): ``ca`` and ``tls_hostname`` of STARTTLS.

Anything else in the file (listen addresses, the database, a link added or removed...) waits
for a restart. The reload is all or nothing: every part is read and checked first, and one bad
file, name or key refuses it with one log line naming the option, the settings in force staying
as they were; only then is every part applied. Each reload is counted in
``gateway_config_reloads_total{result}`` (``ok`` or ``refused``).

A part of the daemon takes part by having ``prepare_reload(config)`` (:class:`Reloadable`),
found among the services of the tree given to :class:`Reloader`.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, runtime_checkable

from prometheus_client import Counter
from twisted.application.service import IService, IServiceCollection, Service
from twisted.logger import Logger

from gateway.billing.notify import Mailer, client_tls
from gateway.config import Config, load_config
from gateway.errors import ConfigError

__all__ = ["RELOADS", "Reloadable", "Reloader"]

log = Logger()

RELOADS = Counter(
    "gateway_config_reloads_total",
    "Reloads of the configuration (SIGHUP), by result: ok (TLS files and peer names in force), "
    "refused (a bad file or option; the settings in force stayed).",
    ["result"],
)
for _result in ("ok", "refused"):
    RELOADS.labels(_result)


@runtime_checkable
class Reloadable(Protocol):
    def prepare_reload(self, config: Config) -> Callable[[], str]:
        """Read and check what ``config`` changes (:class:`ConfigError` if it is wrong, nothing
        changed); the function returned applies it, cannot fail, and says what it did."""
        ...


def _services(top: IService) -> Iterator[IService]:
    yield top
    if IServiceCollection.providedBy(top):
        for child in top:
            yield from _services(child)


def _mail(mailer: Mailer, config: Config) -> Callable[[], str]:
    if config.mail is None:
        return lambda: "mail relay kept (gone from the file: a restart removes it)"
    tls = client_tls(config.mail)  # ConfigError naming mail.ca
    hostname = config.mail.tls_hostname

    def applied() -> str:
        # Only the TLS of the relay: the rest of [mail] waits for a restart.
        mailer.tls = tls
        return f"mail relay (tls_hostname {hostname})"

    return applied


class Reloader(Service):
    """Reloads the configuration file ``path`` into the services of ``top`` on SIGHUP (while it
    runs), or when :meth:`reload` is called."""

    name = "reload"

    def __init__(
        self,
        path: Path | str,
        top: IService,
        reactor: Any,
        load: Callable[[Path], Config] = load_config,
    ) -> None:
        self.path = Path(path)
        self.top = top
        self.reactor = reactor
        self.load = load
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._hangup)

    def stopService(self) -> None:
        super().stopService()
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None

    def _hangup(self, signum: int, frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of whatever the main thread was doing:
        # the reload itself runs in the reactor's next turn.
        self.reactor.callFromThread(self.reload)

    def reload(self) -> bool:
        """Read the file and apply it, all or nothing; ``False`` if it was refused."""
        try:
            config = self.load(self.path)
            steps = []
            for service in _services(self.top):
                if isinstance(service, Reloadable):
                    steps.append(service.prepare_reload(config))
                elif isinstance(service, Mailer):
                    steps.append(_mail(service, config))
        except ConfigError as e:
            RELOADS.labels("refused").inc()
            log.error(
                "reload refused: {error} (in {path}); the settings in force are unchanged",
                error=str(e),
                path=str(self.path),
            )
            return False
        except Exception:
            RELOADS.labels("refused").inc()
            log.failure(
                "reload refused: {path}; the settings in force are unchanged", path=str(self.path)
            )
            return False
        done = [step() for step in steps]
        RELOADS.labels("ok").inc()
        log.info(
            "reloaded: {parts}; other changes of {path} wait for a restart",
            parts="; ".join(done) or "nothing reloadable is configured",
            path=str(self.path),
        )
        return True
