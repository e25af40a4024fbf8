"""Allocation algorithms: pure Python, no Django, shared by the live system and the simulator.

The only secret is a per-trial seed; every random draw is an HMAC of it, so an allocation is a
function of (seed, design, what was allocated before). Nothing is pre-generated or stored.
"""

from .design import ARMS, Decision, Design, DesignError, Factor, StratumError
from .engine import allocate
from .state import BalanceState

__all__ = ["ARMS", "BalanceState", "Decision", "Design", "DesignError", "Factor", "StratumError", "allocate"]
