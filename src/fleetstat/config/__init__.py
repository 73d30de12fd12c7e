"""The XML config file: ``load_config(path) -> Config``, every issue reported at once.

The format (root ``<fleetstat>``; ``<clients>`` is accepted as the same root, and
a single bare ``<client>`` as the whole file, as the assignment shows it)::

    <fleetstat>
      <database url="sqlite:///fleetstat.db"          <!-- relative to this file -->
                alert-after="5m"/>                    <!-- admin mail when it is down -->
      <key path="fleetstat.key"/>                     <!-- server private key -->
      <smtp host="mail.example.com" starttls="true" from="fleetstat@example.com"
            username="fleetstat" password-env="FLEETSTAT_SMTP_PASSWORD"
            admin="root@example.com"/>                <!-- about fleetstat itself -->
      <spool dir="/var/lib/fleetstat/spool" max-size="1GB"/>  <!-- rounds the DB missed -->
      <defaults concurrency="100" connect-timeout="10s" run-timeout="60s"
                host-keys="strict" known-hosts="~/.ssh/known_hosts"
                top-processes="5" top-processes-when="alerts" repeat="4h"/>
      <retention samples="90d" attempts="30d" events="365d"/>
      <cluster broker="amqp://fleetstat:secret@rabbitmq.example.com:5672/"
               shard-size="100" deadline="5m" heartbeat="2s"
               queue-prefix="fleetstat"/>          <!-- rounds shared by workers -->
      <http listen="127.0.0.1:8760" certfile="tls.crt" keyfile="tls.key"
            metrics-public="false" watch="true" session-lifetime="12h"/>
      <client ip="10.0.0.5" port="22" username="monitor" password-env="WEB01_PW"
              mail="ops@example.com, web@example.com" name="web-01" os="linux"
              zone="dc2">                              <!-- only dc2's workers reach it -->
        <alert type="memory" limit="50%"/>
        <alert type="cpu" limit="90%" clear="70%" for="3" window="interval"/>
        <alert type="disk" mount="/var" limit="85%" repeat="1h"/>
        <alert type="load" limit="1.5"/>                <!-- per CPU core -->
        <alert type="unreachable" resolved="false"/>
        <mail to="oncall@example.com"/>                 <!-- more recipients -->
        <events enabled="true" max="500"/>              <!-- security events -->
      </client>
    </fleetstat>

Durations are ``30s``, ``5m``, ``4h``, ``7d`` or plain seconds
(:func:`fleetstat.units.parse_duration`). Credentials: ``password-env="VAR"``
(read at load; an unset one is an error only for the commands that log in with
it, see ``secrets``), ``key="path"``, or ``password="..."`` (a warning when the
file is readable by group or others). ``<database url="..." password-env="VAR"/>``
puts the variable's value into the URL as its password. Parsing goes through defusedxml: DTDs and
entities are refused.

Modules: ``source`` (file -> element tree with lines, typographic quotes),
``reader`` (attribute access that records issues), ``validate`` (single
values), ``parse`` (elements -> dataclasses, ``load_config``), ``rules``
(``<alert>``), ``model`` (the dataclasses), ``dburl`` (database URLs: normalise,
mask), ``secrets`` (which command needs which ``password-env``).
"""

from fleetstat.config.model import (
    AlertRule,
    AlertScope,
    AlertType,
    AlertWindow,
    Client,
    ClientOs,
    Cluster,
    Config,
    Defaults,
    HostKeyPolicy,
    Http,
    JumpHop,
    Retention,
    Smtp,
    SpoolSettings,
    Timeouts,
    TopProcessesWhen,
)
from fleetstat.config.parse import load_config
from fleetstat.config.secrets import require_secrets, secret_issues

__all__ = [
    "AlertRule",
    "AlertScope",
    "AlertType",
    "AlertWindow",
    "Client",
    "ClientOs",
    "Cluster",
    "Config",
    "Defaults",
    "HostKeyPolicy",
    "Http",
    "JumpHop",
    "Retention",
    "Smtp",
    "SpoolSettings",
    "Timeouts",
    "TopProcessesWhen",
    "load_config",
    "require_secrets",
    "secret_issues",
]
