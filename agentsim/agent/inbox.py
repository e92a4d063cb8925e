"""An agent's peer inbox: the ``Peer`` messages it holds until a later round's prompt.

Bounded, because peers are other processes: at most ``max_tasks`` tasks are held (the oldest
task's messages are dropped first) and ``max_per_task`` messages per task (more are refused).
"""

from __future__ import annotations

from agentsim.chat import ChatMessage
from agentsim.wire import Ask

DEFAULT_PEER_TEMPLATE = (
    "Other agents answered this question as follows:\n{peers}\n"
    "Consider their answers, then give your own final answer again."
)


class PeerInbox:
    """Peer messages by task: ``(round, src, msg_id, content)``."""

    def __init__(self, *, max_tasks: int = 256, max_per_task: int = 1024) -> None:
        self.max_tasks = max_tasks
        self.max_per_task = max_per_task
        self.held: dict[str, list[tuple[int, str, str, str]]] = {}

    def hold(self, task_id: str, round: int, src: str, msg_id: str, content: str) -> bool:
        """Keep one message; False when this task's share is full (the message is dropped)."""
        held = self.held.get(task_id)
        if held is None:
            if len(self.held) >= self.max_tasks:
                del self.held[next(iter(self.held))]
            held = self.held[task_id] = []
        if len(held) >= self.max_per_task:
            return False
        held.append((round, src, msg_id, content))
        return True

    def prompt(self, task_id: str, round: int, ask: Ask) -> tuple[list[ChatMessage], list[str]]:
        """The ask's messages, plus the peers' answers from earlier rounds when it wants them;
        and the ids of the peer messages used."""
        messages = list(ask.messages)
        if not ask.peer_inbox:
            return messages, []
        # Only answers from earlier rounds: a fast peer's answer to *this* round may already be
        # here, and using it would make the prompt depend on timing. Names, not arrival, order.
        held = self.held.get(task_id, [])
        peers = sorted(p for p in held if p[0] < round)
        self.held[task_id] = [p for p in held if p[0] >= round]
        if not peers:
            return messages, []
        lines = "\n".join(f"- {src}: {content}" for _, src, _, content in peers)
        template = ask.peer_template or DEFAULT_PEER_TEMPLATE
        messages.append(ChatMessage(role="user", content=template.replace("{peers}", lines)))
        return messages, [mid for _, _, mid, _ in peers]
