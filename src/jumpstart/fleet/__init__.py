"""The fleet simulator: many complete virtual outlets in one process, against a cloud."""

from jumpstart.fleet.fleet import Fleet, FleetDevice, FleetStats, build_fleet, open_files_for

__all__ = ["Fleet", "FleetDevice", "FleetStats", "build_fleet", "open_files_for"]
