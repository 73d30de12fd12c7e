"""fleetstat: agentless machine statistics over SSH.

Kept import-light on purpose: the CLI, the probe builder and the tests import
submodules directly.
"""

__version__ = "0.1.0"
