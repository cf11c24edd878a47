"""Delivery channels: one module per channel behind the ``Notifier`` protocol, built by ``factory``."""
