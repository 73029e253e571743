"""twistd plugin: ``twistd -n gateway -c conf/gateway.toml``. Everything lives in gateway.tap."""

from twisted.application.service import ServiceMaker

gateway = ServiceMaker(
    "Collection gateway",
    "gateway.tap",
    "Shared-use payment collection center: merchant API, CVS, Pay-easy, Zengin",
    "gateway",
)
