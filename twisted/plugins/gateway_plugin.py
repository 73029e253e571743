"""twistd plugin: ``twistd -n gateway -c conf/gateway.toml``; everything is in gateway.app.tap."""

from twisted.application.service import ServiceMaker

gateway = ServiceMaker(
    "Collection gateway",
    "gateway.app.tap",
    "Shared-use payment collection center: merchant API, CVS, Pay-easy, Zengin",
    "gateway",
)
