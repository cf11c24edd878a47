"""What a simulation produced: accounts and events per persona, for the closing summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from schemas.event import Event
from streams.simulate.accounts import SimAccount
from streams.simulate.personas import MIX, Persona


@dataclass(slots=True)
class SimulationSummary:
    """Counts gathered while the events stream past (``observe`` each one)."""

    accounts: list[SimAccount]
    events: int = 0
    bytes_written: int = 0
    events_per_persona: Counter[Persona] = field(default_factory=Counter)
    _persona_of: dict[str, Persona] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._persona_of = {a.account_id: a.persona for a in self.accounts}

    def observe(self, event: Event) -> None:
        """Count one emitted event."""
        self.events += 1
        self.events_per_persona[self._persona_of[event.account_id]] += 1

    def render(self, elapsed_s: float) -> str:
        """A small table: persona, accounts, events, events per account."""
        accounts = Counter(a.persona for a in self.accounts)
        lines = [f"{'persona':<24}{'accounts':>9}{'events':>10}{'per account':>13}"]
        for persona in MIX:
            n, ev = accounts[persona], self.events_per_persona[persona]
            if n:
                lines.append(f"{persona.value:<24}{n:>9}{ev:>10}{ev // n:>13}")
        lines.append(f"{'total':<24}{len(self.accounts):>9}{self.events:>10}")
        rate = self.events / elapsed_s if elapsed_s > 0 else 0.0
        tail = f"{self.events} events in {elapsed_s:.1f} s ({rate:,.0f} events/s)"
        if self.bytes_written:
            tail += f", {self.bytes_written / 1e6:.1f} MB written"
        lines.append(tail)
        return "\n".join(lines)
