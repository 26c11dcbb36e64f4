"""The pgFocus bridge: Micro-Manager's pgFocus device adapter drives the focus-lock service
over a serial line, with no new C++ (docs/pgfocus.md)."""
