"""``preempt simulate``: realistic product-usage traffic from customer personas.

* ``personas`` — the stories (healthy, stalled onboarding, decaying usage, failed payments…) and mix.
* ``accounts`` — the Account records, users and per-account random streams.
* ``behaviour`` / ``episodes`` — what an account does on a day: sessions, API calls, invoices, NPS…
* ``generator`` — the deterministic, time-ordered event stream (same seed → same bytes).
* ``files`` / ``publishing`` — JSONL files for backtests, or Kafka (backfill or live at a rate).
"""

from streams.simulate.generator import Simulation, SimulationConfig
from streams.simulate.personas import MIX, Persona

__all__ = ["MIX", "Persona", "Simulation", "SimulationConfig"]
