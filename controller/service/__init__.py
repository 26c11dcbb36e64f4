"""The headless focus-lock service: one worker thread owns the rig and the focus loop
(daemon.py), an HTTP API and a dashboard let acquisition software and people drive it (api.py),
systemd learns it is up and alive (sdnotify.py), Prometheus can scrape it (metrics.py).
See docs/service.md."""
