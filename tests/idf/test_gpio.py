import pytest

from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.idf.gpio import Gpio, GpioIntrType, GpioMode, GpioPull


def test_inputs_read_pulls_and_outside_drives_with_edges() -> None:
    gpio = Gpio()
    edges: list[tuple[int, int]] = []
    gpio.config(0, GpioMode.INPUT, GpioPull.PULLUP, GpioIntrType.ANYEDGE)
    gpio.isr_handler_add(0, lambda pin: edges.append((pin, gpio.get_level(pin))))
    assert gpio.get_level(0) == 1
    gpio.drive(0, 0)
    gpio.drive(0, 0)  # no change, no edge
    gpio.drive(0, None)
    assert edges == [(0, 0), (0, 1)]


def test_negedge_only_and_floating_pin() -> None:
    gpio = Gpio()
    edges: list[int] = []
    gpio.config(4, GpioMode.INPUT, GpioPull.FLOATING, GpioIntrType.NEGEDGE)
    gpio.isr_handler_add(4, edges.append)
    assert gpio.get_level(4) == 0
    gpio.drive(4, 1)
    gpio.drive(4, 0)
    assert edges == [4]


def test_outputs_are_observable() -> None:
    gpio = Gpio()
    changes: list[tuple[int, int]] = []
    gpio.watch_outputs(lambda pin, level: changes.append((pin, level)))
    gpio.config(27, GpioMode.OUTPUT)
    gpio.set_level(27, 1)
    gpio.set_level(27, 1)
    gpio.set_level(27, 0)
    assert changes == [(27, 1), (27, 0)]
    assert gpio.outputs() == {27: 0}


@pytest.mark.parametrize(
    ("action", "code"),
    [
        (lambda g: g.config(20, GpioMode.INPUT), EspErr.ESP_ERR_INVALID_ARG),
        (lambda g: g.config(34, GpioMode.OUTPUT), EspErr.ESP_ERR_INVALID_ARG),
        (lambda g: g.set_level(5, 1), EspErr.ESP_ERR_INVALID_STATE),
    ],
)
def test_bad_pins_and_modes_are_esp_errors(action, code) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EspError) as caught:
        action(Gpio())
    assert caught.value.code == code
