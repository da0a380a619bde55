"""The operators' web dashboard, served by the cloud on 127.0.0.1 (``server.py``), with its
page in ``static/`` (plain HTML, CSS and JavaScript modules, no build step)."""

from jumpstart.cloud.dashboard.server import DashboardServer

__all__ = ["DashboardServer"]
