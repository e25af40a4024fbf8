"""Simulate a randomisation design before go-live, with the same allocation code as the live system."""

import json

from django.core.management.base import BaseCommand, CommandError

from trial import demo_design
from trial.randomisation import DesignError
from trial.randomisation.simulation import simulate


class Command(BaseCommand):
    help = (
        "Simulate R trials of N patients (factor levels drawn at random from the demo trial's strata) and "
        "report overall, within-stratum and marginal imbalance and the Blackwell–Hodges correct-guess rate."
    )

    def add_arguments(self, parser):
        parser.add_argument("--method", choices=["blocks", "minimisation"], required=True)
        parser.add_argument("--patients", type=int, required=True)
        parser.add_argument("--runs", type=int, required=True)
        parser.add_argument("--seed", type=int, default=0, help="Makes the simulation repeatable.")
        parser.add_argument("--block-sizes", default="2,4,6", help="Comma-separated block sizes (blocks).")
        parser.add_argument("--p", type=float, default=0.8, help="Probability of the preferred arm (minimisation).")
        parser.add_argument("--json", action="store_true", help="Print one JSON object (default: readable text).")

    def handle(self, *args, method, patients, runs, seed, block_sizes, p, **options):
        if patients < 1 or runs < 1:
            raise CommandError("--patients and --runs must both be at least 1.")
        try:
            sizes = tuple(int(size) for size in block_sizes.split(","))
            design = demo_design.design(method, block_sizes=sizes, preferred_arm_probability=p)
        except (ValueError, DesignError) as exc:
            raise CommandError(f"Invalid design: {exc}") from exc
        result = simulate(design, patients=patients, runs=runs, seed=seed)
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(f"{method}: {patients} patients × {runs} runs (seed {seed})")
        for key in ("overall_imbalance", "within_stratum_imbalance"):
            self.stdout.write(f"  {key.replace('_', ' ')}: mean {result[key]['mean']}, max {result[key]['max']}")
        for factor, summary in result["marginal_imbalance"].items():
            self.stdout.write(f"  marginal imbalance {factor}: mean {summary['mean']}, max {summary['max']}")
        self.stdout.write(f"  correct-guess rate: {result['correct_guess_rate']}")
