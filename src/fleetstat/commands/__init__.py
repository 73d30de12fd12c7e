"""The ``fleetstat`` commands, one module per command or command group.

Each module defines its click command(s) with :class:`common.Command` /
:class:`common.Group` and is registered in :mod:`fleetstat.cli`, which also holds
the one place where a :class:`~fleetstat.errors.FleetstatError` becomes a message
and an exit code. A command parses its arguments, calls the library and prints
with :mod:`fleetstat.present`; it raises ``FleetstatError`` (``UsageError`` for a
bad argument) and never catches it. Nothing here imports ``fleetstat.cli``.

Modules import the library inside the command function: ``fleetstat --help`` and
every command's ``--help`` load none of it.
"""
