"""What the fuzz targets found, each as the typed error its input gives now (the inputs are in
tests/fuzz/regressions/<target>/, named after what they found; docs/testing.md, "Fuzzing")."""

from __future__ import annotations

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError
from tests.fuzz.registry import REGRESSIONS


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("api-public-url-with-a-stray-bracket", "api.public_url"),
        ("cvs-agency-url-with-a-stray-bracket", "cvs.agency.url"),
    ],
)
def test_a_url_with_a_stray_bracket_is_a_config_error(name: str, path: str) -> None:
    # urlsplit raises ValueError ("Invalid IPv6 URL") for a ']' without its '['; load_config
    # let it out instead of naming the key.
    with pytest.raises(ConfigError) as refused:
        load_config(REGRESSIONS / "config" / name)
    assert refused.value.path == path
    assert "is not an http(s)" in refused.value.message


def test_an_mpn_number_key_of_an_odd_number_of_hex_digits_is_a_config_error() -> None:
    # 33 hexadecimal digits matched the key's pattern ([0-9a-fA-F]{32,128}), and bytes.fromhex
    # then raised ValueError out of load_config: a key is whole bytes.
    with pytest.raises(ConfigError) as refused:
        load_config(REGRESSIONS / "config" / "mpn-number-key-of-33-hex-digits")
    assert refused.value.path == "mpn.number_key"
    assert "an even number of hexadecimal digits" in refused.value.message


def test_a_database_url_whose_port_is_not_a_number_is_a_config_error() -> None:
    # SQLAlchemy's make_url raises ValueError (not ArgumentError) for such a port; found beside
    # the fuzz target's findings, as the same kind of escape.
    with pytest.raises(ConfigError) as refused:
        load_config(REGRESSIONS / "config" / "database-url-with-a-port-that-is-not-a-number")
    assert refused.value.path == "database.url"
