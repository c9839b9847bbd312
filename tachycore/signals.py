"""Signals of the kernel."""

from django.dispatch import Signal

#: a process registered as a node and started its services; ``kind`` ("web", "dispatcher",
#: "command"), ``node_id``
process_started = Signal()
#: the process's services are stopping (SIGTERM, exit, ``runtime.stop()``); ``node_id``
process_stopping = Signal()
