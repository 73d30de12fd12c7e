"""Header text from what a host sent: one line, inert, bounded.

A Subject names the host (its configured name, else the hostname it reported)
and a mount or a reason: text a compromised host chooses. Before it becomes a
header it is made one inert line here, whatever the row in the outbox holds (a
row queued by an older fleetstat included):

- bidi controls are removed (they would reorder what the reader sees);
- every other control character (CR and LF above all: a new header) is shown as
  its Unicode control picture (``fleetstat.text``), runs of white space are one
  space;
- ``=?`` becomes ``= ?``: the email package decodes RFC 2047 encoded words it is
  *given* (``=?utf-8?q?=0D=0ABcc:...?=`` would become a real CR LF and a ``Bcc:``
  header when the message is written), so none may reach it from a host;
- at most ``SUBJECT_CHARS`` characters.

Non-ASCII text is then written as RFC 2047 encoded words by the email package's
SMTP policy (``mail.outbox.build_email``).
"""

from __future__ import annotations

import re

from fleetstat.text import clean, visible

SUBJECT_CHARS = 200
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def header_text(text: str, limit: int = SUBJECT_CHARS) -> str:
    """``text`` as one inert header line of at most ``limit`` characters."""
    text = visible(_BIDI.sub("", text))
    text = " ".join(text.split()).replace("=?", "= ?")
    return clean(text, limit)[0]
