"""A virtual ESP32: flash, eFuse and pins, booting the app its flash holds.

A ``Device`` owns everything of one chip (no module state), so a fleet runs side by side in one
asyncio loop. ``run()`` boots, runs the app until ``restart()`` / ``power_cut()`` / ``stop()``,
tears the boot down (tasks, timers, event loop, app modules) and boots again.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Callable, Coroutine
from enum import Enum
from typing import Any

from jumpstart.errors import InputError
from jumpstart.formats.partition_table import SUBTYPE_DATA_NVS_KEYS, PartitionType
from jumpstart.idf.app_context import AppContext
from jumpstart.idf.app_loader import LoadedApp
from jumpstart.idf.bootloader import BootedApp, load_boot_image
from jumpstart.idf.efuse import VirtualEfuse, format_mac
from jumpstart.idf.event import EventLoop
from jumpstart.idf.flash import Flash, PowerCutError
from jumpstart.idf.flash_encrypt import (
    FlashEncryptionMode,
    crypt_from_efuse,
    encrypt_flash_on_first_boot,
    flash_encryption_enabled,
    resume_interrupted_encryption,
)
from jumpstart.idf.gpio import Gpio
from jumpstart.idf.log import EspLog, LogLevel
from jumpstart.idf.nvs import NvsFlash
from jumpstart.idf.ota import EspOta
from jumpstart.idf.partition import PartitionMap
from jumpstart.idf.radio import RadioWorld
from jumpstart.idf.rom import LoadedBootloader, rom_load_bootloader
from jumpstart.idf.security import (
    SecurityConfig,
    log_app_security,
    read_secure_version,
    secure_boot_enabled,
    secure_boot_v2_permanently_enable,
)
from jumpstart.idf.timer import TimerService
from jumpstart.idf.wifi import Wifi
from jumpstart.targets import ESP32, ChipProfile

__all__ = ["Device", "DeviceState", "ResetReason"]

# CONFIG_ESP_SYSTEM_PANIC_REBOOT_DELAY_SECONDS: a crashing app reboots, but not in a tight loop.
PANIC_REBOOT_DELAY_S = 1.0


class DeviceState(Enum):
    OFF = "off"
    RUNNING = "running"
    HALTED = "halted"  # the bootloader found nothing to run


class ResetReason(Enum):
    """The ROM's ``rst:`` line (``RESET_REASON`` codes of the ESP32)."""

    POWERON_RESET = 0x1
    SW_CPU_RESET = 0xC  # esp_restart(), and the reboot after a panic


# Tests and tools plug radios (Wi-Fi) in through this hook: it gets the context and the device.
PeripheralHook = Callable[[AppContext, "Device"], None]


class Device:
    """One virtual chip. ``console`` receives every line it prints."""

    def __init__(
        self,
        name: str,
        flash: Flash,
        efuse: VirtualEfuse,
        *,
        console: Callable[[str], None],
        rollback: bool = True,
        log_level: LogLevel = LogLevel.INFO,
        peripherals: list[PeripheralHook] | None = None,
        world: RadioWorld | None = None,
        security: SecurityConfig | None = None,
        chip: ChipProfile = ESP32,
    ) -> None:
        self.name = name
        self.chip = chip
        self.security = security if security is not None else SecurityConfig()
        if self.security.secure_boot:
            chip.require_secure_boot()
        if self.security.flash_encryption is not FlashEncryptionMode.DISABLED:
            chip.require_flash_encryption()
        self.flash = flash
        self.efuse = efuse
        self.console = console
        self.rollback = rollback
        self.log_level = log_level
        self.gpio = Gpio()
        self.state = DeviceState.OFF
        self.boot_count = 0
        self.booted: BootedApp | None = None
        self.context: AppContext | None = None
        self._peripherals = list(peripherals or [])
        # No radio world: an empty one in memory (the device hears no AP).
        self.world = world if world is not None else RadioWorld()
        self._boot_time = 0.0
        self._reason = ResetReason.POWERON_RESET
        self._wake: asyncio.Event | None = None
        self._next: ResetReason | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- control -----------------------------------------------------------------------
    def restart(self) -> None:
        """``esp_restart()``: end this boot and boot again."""
        self._request(ResetReason.SW_CPU_RESET)

    def power_cut(self) -> None:
        """Power lost and back: like a restart, with the power-on reset reason."""
        self._request(ResetReason.POWERON_RESET)

    async def stop(self) -> None:
        """Power off for good; ``run()`` returns."""
        self._stopping = True
        self._request(ResetReason.POWERON_RESET)

    def _request(self, reason: ResetReason) -> None:
        self._next = reason
        if self._wake is not None:
            self._wake.set()

    def uptime_ms(self) -> int:
        return int((asyncio.get_running_loop().time() - self._boot_time) * 1000)

    def status(self) -> dict[str, Any]:
        desc = self.booted.image.app_description if self.booted else None
        return {
            "name": self.name,
            "state": self.state.value,
            "mac": format_mac(self.efuse.mac),
            "boot_count": self.boot_count,
            "uptime_ms": self.uptime_ms() if self.state is not DeviceState.OFF else 0,
            "partition": self.booted.partition.label if self.booted else None,
            "app": desc.project_name if desc else None,
            "version": desc.version if desc else None,
            "outputs": {str(pin): level for pin, level in self.gpio.outputs().items()},
            "wifi": self._wifi_status(),
        }

    def _wifi_status(self) -> dict[str, Any] | None:
        wifi = self.context.wifi if self.context is not None else None
        if not isinstance(wifi, Wifi) or not wifi.started:
            return None
        softap = wifi.ap_config.ssid if wifi.ap_running and wifi.ap_config else None
        return {"mode": wifi.mode.value, "ssid": wifi.connected_to, "ip": wifi.ip, "softap": softap}

    # -- running -----------------------------------------------------------------------
    async def run(self) -> None:
        """Boot and keep the device running until :meth:`stop`."""
        self._wake = asyncio.Event()
        try:
            while not self._stopping:
                self._wake.clear()
                self._next = None
                await self._boot()
                await self._wake.wait()
                await self._teardown()
                self._reason = self._next or ResetReason.POWERON_RESET
        finally:
            await self._teardown()
            self.state = DeviceState.OFF

    def _print_rom_banner(self) -> None:
        if not self.chip.extended_header:  # ESP8266's ROM: one line, its own reset causes
            cause = 1 if self._reason is ResetReason.POWERON_RESET else 2
            self.console("")
            self.console(f" ets Jan  8 2013,rst cause:{cause}, boot mode:(3,6)")
            self.console("")
            return
        self.console("ets Jul 29 2019 12:21:46")
        self.console("")
        code = self._reason.value
        self.console(f"rst:0x{code:x} ({self._reason.name}),boot:0x13 (SPI_FAST_FLASH_BOOT)")

    async def _boot(self) -> None:
        loop = asyncio.get_running_loop()
        self._boot_time = loop.time()
        self.boot_count += 1
        self._print_rom_banner()
        log = EspLog(self.uptime_ms, self.console, self.log_level)
        self.gpio.reset()
        self.gpio.set_loop(loop)
        try:
            bootloader = self._rom(log)
        except PowerCutError:
            self.booted = None
            self.state = DeviceState.OFF
            return
        if bootloader is None:
            return
        log.i("boot", f"ESP-IDF {bootloader.description.idf_ver} 2nd stage bootloader")
        log.i("boot", f"compile time {bootloader.description.date_time}")
        try:
            loaded = self._bootloader(log, bootloader)
        except PowerCutError:
            # Power lost during the bootloader's own flash writes: nothing runs until the
            # power comes back (restore_power(), then power_cut() boots again).
            self.booted = None
            self.state = DeviceState.OFF
            return
        except InputError as err:
            log.e("boot", str(err))
            self._halt(log)
            return
        if loaded is None:
            return
        parts, app = loaded
        assert self.booted is not None
        log_app_security(self.efuse, log)
        self._log_app(log)
        timers = TimerService(loop, on_error=lambda t, e: self._panic(log, f"timer {t.name}", e))
        events = EventLoop(on_error=lambda ev, e: self._panic(log, f"event {ev.name}", e))
        events.start()
        context = AppContext(
            device_name=self.name,
            mac=self.efuse.mac,
            app=self.booted.package,
            running_partition=self.booted.partition,
            partitions=parts,
            log=log,
            events=events,
            timers=timers,
            gpio=self.gpio,
            nvs=NvsFlash(parts, encryption=self._nvs_encryption(parts), log=log),
            restart=self.restart,
            tick_ms=self.uptime_ms,
            spawn=self._spawn,
            chip=self.chip,
        )
        if parts.table.ota_apps:
            context.ota = EspOta(
                parts,
                self.booted.partition,
                log,
                self.restart,
                rollback=self._rollback,
                chip=self.chip,
                trusted_key_digests=self._trusted_digests(),
                efuse=self.efuse,
                anti_rollback=self._anti_rollback,
            )
        context.on_teardown(app.unload)
        context.on_teardown(events.stop)
        context.on_teardown(timers.stop_all)
        wifi = Wifi(self.world, events, log, self.efuse.mac, self.name, nvs=context.nvs)
        context.wifi = wifi
        context.on_teardown(wifi.stop)
        for hook in self._peripherals:
            hook(context, self)
        self.context = context
        self.state = DeviceState.RUNNING
        log.i("cpu_start", "Starting scheduler on PRO CPU.")
        self._spawn(self._main(app, context), "main")

    def _log_app(self, log: EspLog) -> None:
        desc = self.booted.image.app_description if self.booted else None
        if desc is not None:
            log.i("app_init", f"Project name:     {desc.project_name}")
            log.i("app_init", f"App version:      {desc.version}")
            log.i("app_init", f"Compile time:     {desc.date} {desc.time}")
            log.i("app_init", f"ESP-IDF:          {desc.idf_ver}")

    def _rom(self, log: EspLog) -> LoadedBootloader | None:
        """The ROM stage: flash decryption as the eFuses say, then the bootloader at 0x1000.
        None when the ROM stops (it then runs nothing, so no ESP-IDF log either) or resets.

        A first-boot encryption a power cut interrupted is finished here, before the
        bootloader is checked: the cut may have left the bootloader itself half encrypted.
        (ESP32's mask ROM could not do this; the virtual chip's does, so no cut bricks it.)
        """
        try:
            encrypted = self.chip.flash_encryption and flash_encryption_enabled(self.efuse)
            self.flash.set_crypt(crypt_from_efuse(self.efuse) if encrypted else None)
            mode = self.security.flash_encryption
            if encrypted or mode is not FlashEncryptionMode.DISABLED:
                if mode is FlashEncryptionMode.DISABLED:
                    mode = FlashEncryptionMode.DEVELOPMENT
                if resume_interrupted_encryption(self.flash, self.efuse, mode, log):
                    self._reset_after_encryption(log)
                    return None
            return rom_load_bootloader(self.flash, self.efuse, self.console, self.chip)
        except InputError as err:
            self.console(str(err))
            self.booted = None
            self.state = DeviceState.HALTED
            return None

    def _nvs_encryption(self, parts: PartitionMap) -> bool:
        """CONFIG_NVS_ENCRYPTION follows flash encryption (ESP-IDF's default), with the
        flash-encryption scheme: it needs an nvs_keys partition."""
        return self.flash.crypt is not None and bool(
            parts.find(PartitionType.DATA, subtype=SUBTYPE_DATA_NVS_KEYS)
        )

    @property
    def _rollback(self) -> bool:
        """App rollback: ESP-IDF's on ESP32; ESP8266_RTOS_SDK's otadata has no state for it."""
        return self.rollback and self.chip.app_rollback

    @property
    def _anti_rollback(self) -> bool:
        """The eFuse secure version gate: a chip without eFuse security has none."""
        return self.security.anti_rollback and self.chip.secure_boot

    def _trusted_digests(self) -> list[bytes]:
        """Key digests images must be signed with: once secure boot is on (ABS_DONE_1), or
        as soon as a digest is burned (a pre-burned digest is trusted as it is)."""
        return self.efuse.secure_boot_key_digests if self.chip.secure_boot else []

    def _bootloader(
        self, log: EspLog, bootloader: LoadedBootloader
    ) -> tuple[PartitionMap, LoadedApp] | None:
        """The second stage: table, app choice, the first-boot security steps. None when it
        resets (encryption just enabled) or halts."""
        mode = self.security.flash_encryption
        try:
            parts = PartitionMap.load(self.flash)
        except InputError as err:
            log.e("boot", f"Failed to verify partition table: {err}")
            self._halt(log)
            return None
        self._print_partition_table(log, parts)
        anti_rollback = self._anti_rollback
        floor = read_secure_version(self.efuse) if anti_rollback else 0
        if anti_rollback and floor:
            log.i("boot", "Enabled a check secure version of app for anti rollback")
            log.i("boot", f"Secure version (from eFuse) = {floor}")
        self.booted = load_boot_image(
            parts,
            log,
            rollback=self._rollback,
            chip=self.chip,
            trusted_key_digests=self._trusted_digests(),
            min_secure_version=floor,
        )
        if self.security.secure_boot and not secure_boot_enabled(self.efuse):
            length = len(self.booted.image.to_bytes())
            secure_boot_v2_permanently_enable(
                self.efuse, bootloader.signature_blocks, self.booted.partition, length, log
            )
        if mode is not FlashEncryptionMode.DISABLED and encrypt_flash_on_first_boot(
            self.flash, parts, self.efuse, mode, log, bootloader_length=bootloader.length
        ):
            self._reset_after_encryption(log)
            return None
        return parts, LoadedApp(self.booted.package)

    def _reset_after_encryption(self, log: EspLog) -> None:
        log.i("boot", "Resetting with flash encryption enabled...")
        self.booted = None
        self.state = DeviceState.OFF
        self._request(ResetReason.SW_CPU_RESET)

    def _halt(self, log: EspLog) -> None:
        self.booted = None
        self.state = DeviceState.HALTED
        log.e("boot", "No app to run; the device waits for a new image (idf flash) or restart")

    def _print_partition_table(self, log: EspLog, parts: PartitionMap) -> None:
        log.i("boot", "Partition Table:")
        log.i("boot", "## Label            Usage          Type ST Offset   Length")
        for n, p in enumerate(parts.table.partitions):
            usage = (
                "OTA app"
                if p.ota_slot is not None
                else ("factory app" if p.type == PartitionType.APP else "data")
            )
            log.i(
                "boot",
                f"{n:2d} {p.name:<16} {usage:<14} {p.type:02x} {p.subtype:02x} "
                f"{p.offset:08x} {p.size:08x}",
            )
        log.i("boot", "End of partition table")

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self.context is None:
            return
        err = task.exception()
        if err is not None:
            self._panic(self.context.log, f"task {task.get_name()}", err)

    async def _main(self, app: LoadedApp, context: AppContext) -> None:
        result = app.app_main(context)
        if inspect.isawaitable(result):
            await result
        # app_main returning ends the main task only; the rest of the system keeps running.

    def _panic(self, log: EspLog, where: str, err: BaseException) -> None:
        log.e("esp_system", f"Unhandled {type(err).__name__} in {where}: {err}")
        for line in traceback.format_exception(err)[-6:]:
            for part in line.rstrip().splitlines():
                self.console(part)
        self.console(f"Rebooting in {PANIC_REBOOT_DELAY_S:g} s...")
        loop = asyncio.get_running_loop()
        boot = self.boot_count
        loop.call_later(PANIC_REBOOT_DELAY_S, self._reboot_after_panic, boot)

    def _reboot_after_panic(self, boot: int) -> None:
        if self.boot_count == boot and not self._stopping:
            self._request(ResetReason.SW_CPU_RESET)

    async def _teardown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        context, self.context = self.context, None
        if context is not None:
            for hook in context.teardown_hooks():
                result = hook()
                if inspect.isawaitable(result):
                    await result
        self.booted = None
        if self.state is not DeviceState.OFF:
            self.state = DeviceState.OFF
