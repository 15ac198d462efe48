"""Who may do what in the twin's console and API: four roles in one order, and the permissions
each role is granted.

Roles are ranked, each one includes everything below it: ``viewer < trainee < instructor <
admin``. A permission names one kind of act and the *lowest* role that may do it
(:data:`GRANTS`), so the whole policy is this one table: the API checks it on every route
(``twin.api.auth``), ``GET /api/me`` sends the user's permissions to the console, which shows
only the buttons they allow, and the tests walk the same table.

Why these lines fall where they do:

* a **trainee** answers alarms as ward staff would: acknowledge, pause the audio, and record a
  response (refill, reprogram, ask for a study, escalate ...). A response that changes the pump
  (refill, reprogram) is sent as a command, but only as the answer to an alarm, so every change
  a trainee makes is tied to the alarm that asked for it and scored with it;
* an **instructor** runs the exercise: shelving (suppresses an alarm for hours: ISA-18.2 wants it
  controlled), any command, and faults injected into or cleared from simulated pumps; and only an
  instructor may look behind the glass at the simulator's ground truth (what really reached the
  patient, the true catheter state), which a real clinic never sees and a trainee must not;
* an **admin** manages accounts and takes alarm points out of service (a maintenance decision,
  audited, with no time limit).

Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Role(StrEnum):
    VIEWER = "viewer"
    TRAINEE = "trainee"
    INSTRUCTOR = "instructor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def includes(self, other: Role) -> bool:
        """Does this role have every right of ``other``?"""
        return self.rank >= other.rank


_RANK: Final[dict[Role, int]] = {role: n for n, role in enumerate(Role)}


class Permission(StrEnum):
    READ = "read"  # every view: fleet, devices, alarms, journal, commands, responses, the live stream
    ACKNOWLEDGE = "acknowledge"
    SILENCE = "silence"  # IEC 60601-1-8 audio pause; not acknowledgement
    RESPOND = "respond"  # record a response action on an alarm (POST /api/alarms/{key}/responses)
    SHELVE = "shelve"  # shelve and unshelve
    COMMAND = "command"  # any command to a simulated device, faults included
    REMOVE_FROM_SERVICE = "remove_from_service"  # and return to service
    MANAGE_USERS = "manage_users"  # list, create, change and disable accounts
    RUN_SCENARIO = "run_scenario"  # start, pause, resume and abort fault scenarios (and training sessions)
    VIEW_SIM_TRUTH = "view_sim_truth"  # the simulator's ground truth of a simulated pump, labelled as such


GRANTS: Final[dict[Permission, Role]] = {
    Permission.READ: Role.VIEWER,
    Permission.ACKNOWLEDGE: Role.TRAINEE,
    Permission.SILENCE: Role.TRAINEE,
    Permission.RESPOND: Role.TRAINEE,
    Permission.SHELVE: Role.INSTRUCTOR,
    Permission.COMMAND: Role.INSTRUCTOR,
    Permission.REMOVE_FROM_SERVICE: Role.ADMIN,
    Permission.MANAGE_USERS: Role.ADMIN,
    Permission.RUN_SCENARIO: Role.INSTRUCTOR,
    Permission.VIEW_SIM_TRUTH: Role.INSTRUCTOR,
}
"""Permission -> the lowest role granted it. Every permission has exactly one entry."""


def can(role: Role, permission: Permission) -> bool:
    return role.includes(GRANTS[permission])


def permissions(role: Role) -> list[Permission]:
    """What ``role`` may do, in declaration order (for ``GET /api/me``)."""
    return [p for p in Permission if can(role, p)]


__all__ = ["GRANTS", "Permission", "Role", "can", "permissions"]
