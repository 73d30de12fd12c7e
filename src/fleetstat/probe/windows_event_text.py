"""What a Security-log event means: its account, source address and one-line summary.

Per event ID, the account is taken from the field that names who the event is
about (the new member of a group, the renamed account, the logged-on user, else
the Subject), and the summary reads as a sentence for the events mail. Checked
against events recorded on real Windows machines (see
tests/fixtures/windows/README.md): what those taught is marked "recorded".
"""

from .events import make_event

TITLES = {
    1100: "The event logging service has shut down",
    1101: "Audit events have been dropped by the transport",
    1102: "The audit log was cleared",
    1104: "The security log is now full",
    1108: "The event logging service encountered an error",
    4608: "Windows is starting up",
    4616: "The system time was changed",
    4624: "An account was successfully logged on",
    4625: "An account failed to log on",
    4634: "An account was logged off",
    4647: "User initiated logoff",
    4648: "A logon was attempted using explicit credentials",
    4670: "Permissions on an object were changed",
    4672: "Special privileges assigned to new logon",
    4673: "A privileged service was called",
    4688: "A new process has been created",
    4697: "A service was installed in the system",
    4698: "A scheduled task was created",
    4719: "System audit policy was changed",
    4720: "A user account was created",
    4722: "A user account was enabled",
    4723: "An attempt was made to change an account's password",
    4724: "An attempt was made to reset an account's password",
    4725: "A user account was disabled",
    4726: "A user account was deleted",
    4728: "A member was added to a security-enabled global group",
    4729: "A member was removed from a security-enabled global group",
    4731: "A security-enabled local group was created",
    4732: "A member was added to a security-enabled local group",
    4733: "A member was removed from a security-enabled local group",
    4735: "A security-enabled local group was changed",
    4738: "A user account was changed",
    4739: "Domain Policy was changed",
    4740: "A user account was locked out",
    4741: "A computer account was created",
    4742: "A computer account was changed",
    4756: "A member was added to a security-enabled universal group",
    4757: "A member was removed from a security-enabled universal group",
    4768: "A Kerberos authentication ticket (TGT) was requested",
    4769: "A Kerberos service ticket was requested",
    4771: "Kerberos pre-authentication failed",
    4776: "The computer attempted to validate the credentials for an account",
    4781: "The name of an account was changed",
    4902: "The Per-user audit policy table was created",
    4904: "An attempt was made to register a security event source",
    4905: "An attempt was made to unregister a security event source",
    4907: "Auditing settings on object were changed",
    5024: "The Windows Firewall Service has started successfully",
    5033: "The Windows Firewall Driver has started successfully",
    5058: "Key file operation",
    5061: "Cryptographic operation",
    5890: "An object was added to the COM+ Catalog",
}
LOGON_TYPES = {
    0: "system",  # recorded: SYSTEM's own logon at start-up (4624 with LogonType 0)
    2: "interactive",
    3: "network",
    4: "batch",
    5: "service",
    7: "unlock",
    8: "network cleartext",
    9: "new credentials",
    10: "remote interactive",
    11: "cached interactive",
}
# 4625's SubStatus (or Status), from the event's documentation.
FAILURE_REASONS = {
    "0xc0000064": "no such user",
    "0xc000006a": "wrong password",
    "0xc000006d": "bad user name or password",
    "0xc000006f": "outside allowed hours",
    "0xc0000070": "workstation not allowed",
    "0xc0000071": "password expired",
    "0xc0000072": "account disabled",
    "0xc0000133": "clock skew with the domain controller",
    "0xc000015b": "logon type not granted",
    "0xc0000193": "account expired",
    "0xc0000224": "password must change",
    "0xc0000234": "account locked out",
}
# The result of a Kerberos request (4768, 4769, 4771's Status): RFC 4120's error
# codes, those Microsoft's pages for these events list as the usual ones.
KERBEROS_RESULTS = {
    "0x6": "no such user",
    "0x7": "no such service",
    "0x12": "account disabled, expired or locked out",
    "0x17": "password expired",
    "0x18": "wrong password",
    "0x25": "clock skew",
}
# Events whose Status is their result: 0x0 is success, anything else is named.
RESULT_CODES = {
    4768: KERBEROS_RESULTS,
    4769: KERBEROS_RESULTS,
    4771: KERBEROS_RESULTS,
    4776: FAILURE_REASONS,  # NTLM: the NTSTATUS codes of 4625
}
# What the event is about besides who: (field, word before it).
_OBJECTS = {
    4688: ("NewProcessName", "process"),
    4697: ("ServiceName", "service"),
    4698: ("TaskName", "task"),
    4776: ("Workstation", "workstation"),  # NTLM names the caller, not its address
}
_MEMBER_ADDED = (4728, 4732, 4756)
_MEMBER_REMOVED = (4729, 4733, 4757)
_SUBJECT_IS_ACCOUNT = (1102, 4648, 4672, 4719)
# Account and group management: the Subject is who did it ("by ...").
_MANAGED = (4720, 4722, 4723, 4724, 4725, 4726, 4731, 4735, 4738, 4740, 4741, 4742, 4781)


def _value(data, name):
    """A data field, with the log's placeholders for "none" ("-", empty) as None."""
    value = data.get(name)
    if value is None:
        return None
    value = value.strip()
    return None if value in ("", "-") else value


def _account(data, prefix, domain_prefix=None):
    user = _value(data, prefix + "UserName")
    domain = _value(data, (domain_prefix or prefix) + "DomainName")
    if user is None:
        return None
    if "@" in user:  # recorded: 4769 names "user@REALM", which carries its domain
        return user
    return "%s\\%s" % (domain, user) if domain else user


def _number(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def shape_event(record_id, event_id, occurred_at, level, provider, computer, data):
    """The shared event shape, with account, address and summary per event ID."""
    if event_id in _MEMBER_ADDED + _MEMBER_REMOVED:
        # Recorded: a local account's MemberName is "-", only its SID is logged.
        account = _value(data, "MemberName") or _value(data, "MemberSid")
    elif event_id in _SUBJECT_IS_ACCOUNT:
        account = _account(data, "Subject")
    elif event_id == 4781:  # renamed: Old/NewTargetUserName, no TargetUserName
        account = _account(data, "NewTarget", "Target") or _account(data, "Subject")
    elif event_id == 4740:  # TargetDomainName is the caller's computer here
        account = _value(data, "TargetUserName")
    else:
        account = _account(data, "Target") or _account(data, "Subject")
    address = _value(data, "IpAddress")
    if address and address.lower().startswith("::ffff:"):
        address = address[7:]
    logon_type = _number(_value(data, "LogonType"))
    key = "windows:%s:%s" % (record_id, occurred_at)
    return make_event(
        event_key=key,
        source="windows",
        record_id=record_id,
        occurred_at=occurred_at,
        event_id=event_id,
        level=level,
        provider=provider,
        computer=computer,
        account=account,
        source_address=address,
        logon_type=logon_type,
        summary=summarize(event_id, account, address, logon_type, data),
        data=data,
    )


def summarize(event_id, account, address, logon_type, data):
    title = TITLES.get(event_id, "Event %s" % event_id)
    if account is None and address is None and logon_type is None:
        return title  # service start, firewall, audit policy: nobody to name
    parts = [title + ":", account or "-"]
    if logon_type is not None:
        parts.append("(%s logon)" % LOGON_TYPES.get(logon_type, "type %d" % logon_type))
    if address:
        parts.append("from " + address)
    if event_id in _OBJECTS:
        name, word = _OBJECTS[event_id]
        thing = _value(data, name)
        if thing:
            parts.append("(%s %s)" % (word, thing))
    if event_id == 4625:
        status = (_value(data, "SubStatus") or "").lower()
        if status in ("", "0x0"):
            status = (_value(data, "Status") or "").lower()
        reason = FAILURE_REASONS.get(status) or _value(data, "FailureReason") or status
        if reason:
            parts.append("- " + reason)
    elif event_id in RESULT_CODES:
        status = (_value(data, "Status") or "").lower()
        if status not in ("", "0x0"):
            parts.append("- " + RESULT_CODES[event_id].get(status, "status " + status))
    elif event_id in _MEMBER_ADDED:
        parts.append("to group " + (_account(data, "Target") or "-"))
    elif event_id in _MEMBER_REMOVED:
        parts.append("from group " + (_account(data, "Target") or "-"))
    elif event_id == 4781:
        old_name = _value(data, "OldTargetUserName")
        if old_name and old_name != _value(data, "NewTargetUserName"):
            parts.append("(was %s)" % old_name)
    elif event_id == 4648:
        parts.append("as " + (_account(data, "Target") or "-"))
        server = _value(data, "TargetServerName")
        if server:
            parts.append("on " + server)
    if event_id in _MANAGED + _MEMBER_ADDED + _MEMBER_REMOVED:
        by = _account(data, "Subject")
        if by and by != account:  # 4723: users change their own password
            parts.append("by " + by)
    return " ".join(parts)
