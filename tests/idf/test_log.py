from jumpstart.idf.log import EspLog, LogLevel


def make() -> tuple[EspLog, list[str]]:
    lines: list[str] = []
    now = iter(range(1000, 100000, 7))
    return EspLog(lambda: next(now), lines.append), lines


def test_lines_look_like_esp_idf() -> None:
    log, lines = make()
    log.i("app_main", "Connected with IP Address:192.168.4.2")
    log.e("boot", "image at 0x20000 is corrupt")
    log.print("[0] Hello world!\n")
    assert lines == [
        "I (1000) app_main: Connected with IP Address:192.168.4.2",
        "E (1007) boot: image at 0x20000 is corrupt",
        "[0] Hello world!",
    ]


def test_levels_filter_per_tag_and_default() -> None:
    log, lines = make()
    log.d("wifi", "hidden at INFO")
    log.level_set("wifi", LogLevel.VERBOSE)
    log.v("wifi", "shown")
    log.level_set("*", LogLevel.WARN)
    log.i("wifi", "hidden again: '*' resets every tag")
    log.w("app", "warned")
    assert [line.split(": ", 1)[1] for line in lines] == ["shown", "warned"]
