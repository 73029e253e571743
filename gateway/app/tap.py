"""``twistd gateway``: options and the call into the composition root."""

from __future__ import annotations

import gc
import os
from typing import ClassVar

from twisted.application.service import IService
from twisted.python import usage

from gateway.config import Config, load_config
from gateway.errors import ConfigError


class Options(usage.Options):
    optParameters: ClassVar = [
        ["config", "c", "conf/gateway.toml", "The gateway's TOML configuration."]
    ]

    def postOptions(self) -> None:
        try:
            self.config: Config = load_config(self["config"])
        except ConfigError as e:
            # twistd prints this and exits non-zero: nothing has listened yet.
            raise usage.UsageError(f"configuration error: {e}") from None
        if self.config.secret_key is None:
            raise usage.UsageError(
                "configuration error: secrets.key: is required (or the environment's "
                "GATEWAY_SECRET_KEY): page tokens and webhook secrets are kept with it"
            )


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    # Everything the daemon creates (database, logs, outbox files, reports, certificates) is
    # readable by its user only.
    os.umask(0o077)

    from gateway.app.reload import Reloader
    from gateway.app.service import make_service

    try:
        service = make_service(options.config, reactor)
    except ConfigError as e:
        # A file the configuration names (a certificate, a CA) is found wanting only when the
        # service is built: one line naming the option, as for load_config's errors, not a
        # traceback. Nothing has listened yet.
        raise SystemExit(f"configuration error: {e}") from None
    # SIGHUP reads the file again: new TLS files and peer names (gateway.app.reload).
    Reloader(options["config"], service, reactor).setServiceParent(service)
    reactor.callWhenRunning(freeze_startup_heap)
    return service


def freeze_startup_heap() -> None:
    """Tune the garbage collector for a daemon that allocates per record: what start-up built
    (modules, schema, compiled statements, config) lives as long as the process, so it is moved
    out of the collector's sight (``gc.freeze``), and the youngest generation is collected every
    50,000 allocations instead of 700, so that a group of a thousand 速報 is not interrupted by
    dozens of collections of objects that are still in use. Cyclic garbage waits a little
    longer; reference counting frees the rest at once. bench/cvs_ingest.py: daemon CPU per
    record 360–374 µs before, 306–318 µs after (bench/README.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
