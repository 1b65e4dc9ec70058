"""Which drivers can hang a server: the lab freezes its nodes' daemons; the vagrant driver
has no freeze/thaw yet, so it refuses the fault and hang tests skip there, saying so."""

from __future__ import annotations

import pytest

from mailring.cluster import driver_class
from mailring.errors import InputError


def test_the_lab_can_hang_and_the_vagrant_driver_says_it_cannot() -> None:
    assert driver_class("lab").supports("hang")
    assert not driver_class("vagrant").supports("hang")
    with pytest.raises(InputError, match="cannot hang: it lacks freeze, thaw"):
        driver_class("vagrant").require(driver_class("vagrant"), "hang")  # type: ignore[arg-type]
