"""Pure functions of rollback: which version the champion goes back to."""

from __future__ import annotations

from mlops_lab.common.errors import UserError


class RollbackError(UserError, ValueError):
    """No version to roll back to, or one that may not be the champion."""


def rollback_target(champion: str, passed: list[str], requested: str | None) -> str:
    """The version `champion` moves to: the one requested, else the latest version before the
    champion that passed the gate; RollbackError naming why there is none."""
    if requested is not None:
        if requested == champion:
            raise RollbackError(f"v{requested} is the champion already")
        if requested not in passed:
            raise RollbackError(
                f"v{requested} never passed the promotion gate, so it may not be the champion "
                f"(versions that did: {', '.join(f'v{v}' for v in sorted(passed, key=int))})"
            )
        return requested
    earlier = [version for version in passed if int(version) < int(champion)]
    if not earlier:
        raise RollbackError(
            f"no version before the champion v{champion} passed the promotion gate: nothing "
            "to roll back to"
        )
    return max(earlier, key=int)


def rollback_note(when: str, who: str, reason: str, previous: str, target: str) -> dict[str, str]:
    """The tags a rollback leaves on the version it leaves and the one it goes back to."""
    return {
        previous: f"rolled back to v{target} at {when} by {who}: {reason}",
        target: f"champion again (was v{previous}) at {when} by {who}: {reason}",
    }
