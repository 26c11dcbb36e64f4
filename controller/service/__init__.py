"""The headless focus-lock service, one job per module: the facade callers ask (daemon.py), the
one worker thread that owns the rig and runs the lock (worker.py), the hardware it opens
(hardware.py), the mode and the frozen status snapshots any thread reads (status.py), the recent
steps (history.py), the live events pushed to subscribers (events.py), why a request is refused
(errors.py), the HTTP API and the dashboard (api.py), systemd's notify protocol (sdnotify.py),
Prometheus' text (metrics.py) and the API's Python client (client.py).
See docs/service.md."""
