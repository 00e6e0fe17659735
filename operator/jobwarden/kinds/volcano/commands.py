"""Volcano's Commands (`bus.volcano.sh/v1alpha1` `Command`): an order aimed at one job through
`target` (vcctl's `job suspend` is AbortJob, `job resume` ResumeJob), carried out once and deleted.

Upstream's job controller deletes the Command first and then queues its action; here the plan carries
out the oldest pending Command and names it in `Plan.consumed_commands`, and the shell deletes it only
after the status recording the action is written (a crash in between leaves the Command, which the
next pass sees again; see the README's known remainder). One Command per plan, so each action is
recorded before the next one is read.

What an action does depends on the phase, as upstream's `state/*.go`:
- Pending, Inqueue, Running: RestartJob, AbortJob, CompleteJob, TerminateJob as the same policy
  actions would (the version is bumped, pods are killed);
- Aborting, Aborted: ResumeJob kills what is left, moves to Restarting with `retryCount + 1` and a
  new version, after which Pending creates the pods again;
- anything else (ResumeJob while running, an action on a finished job, an unknown action): the
  Command is consumed and the job goes on as it was (upstream's default branches only sync or kill)."""

from __future__ import annotations

from dataclasses import dataclass

from jobwarden.core.plan import Body, Event

RESUME_JOB = "ResumeJob"
ISSUED_REASON = "CommandIssued"  # upstream's job event when it takes a Command


@dataclass(frozen=True)
class Command:
    name: str
    action: str

    @property
    def issued(self) -> Event:
        """Upstream's event, word for word."""
        message = (
            f"Start to execute command {self.action}, "
            "and clean it up to make sure executed not more than once."
        )
        return Event("Normal", ISSUED_REASON, message)

    @property
    def description(self) -> str:
        """`state.message` of the phase the action moves the job to."""
        return f"Command {self.name} asked for {self.action}"


def first_command(commands: tuple[Body, ...]) -> Command | None:
    """The oldest pending Command (the shell orders them by creation time, then name)."""
    if not commands:
        return None
    body = commands[0]
    return Command(str(body["metadata"]["name"]), str(body.get("action") or ""))
