"""The head's services: the control-plane API the dashboard calls, status and views, the
embedded server and `db serve`, inventory editing and import, the demo, media intake, reconcile,
commands to agents."""
