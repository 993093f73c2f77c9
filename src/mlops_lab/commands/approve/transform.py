"""Pure functions of approve: whether a version may take the champion alias now."""

from __future__ import annotations

from mlops_lab.common.errors import UserError
from mlops_lab.tracking.registry import APPROVED, AWAITING_APPROVAL


class ApprovalError(UserError, ValueError):
    """A version that is not waiting for approval, or whose verdict is out of date."""


def approval_problem(
    version: str, approval: str | None, judged_against: str | None, champion: str | None
) -> str | None:
    """Why this version may not be approved now (its approval tag, the champion it beat, the
    champion today), or None when it may."""
    if champion == version:
        return f"v{version} is the champion already"
    if approval == APPROVED:
        return f"v{version} was approved already, and a later champion has replaced it"
    if approval != AWAITING_APPROVAL:
        return (
            f"v{version} is not waiting for approval: only a version that passed the promotion "
            "gate while loop.require_approval was true is"
        )
    if (judged_against or None) != champion:
        return (
            f"v{version} beat v{judged_against}, and the champion is now v{champion}: judge it "
            "again (mlops-lab loop, or dvc repro) before approving it"
        )
    return None


def approval_note(when: str, who: str, previous: str | None) -> str:
    """The tag an approval leaves on the version it makes champion."""
    return f"approved at {when} by {who}" + (f", replacing v{previous}" if previous else "")
