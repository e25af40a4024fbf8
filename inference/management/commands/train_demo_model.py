"""Train the bundled demo GTV model on phantom PET/CT and write gtv_unet.pt + model_card.json (issue 4).

Demo and tests only — NOT FOR CLINICAL USE. Seeded and deterministic; minutes on two CPU cores.
"""

from dataclasses import replace
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inference.predict import DEMO_MODEL_DIR
from inference.training import TrainingConfig, train_and_export

TARGET_MEAN_DICE = 0.80


class Command(BaseCommand):
    help = "Train the demo 3-D U-Net on phantom seeds, validate on held-out seeds, export TorchScript + model card."

    def add_arguments(self, parser):
        defaults = TrainingConfig()
        parser.add_argument(
            "--out", type=Path, default=DEMO_MODEL_DIR, help="Output folder (default: the bundled demo model)."
        )
        parser.add_argument("--steps", type=int, default=defaults.steps, help="Optimiser steps (batches).")
        parser.add_argument("--seed", type=int, default=defaults.seed, help="Initialisation and sampling seed.")
        parser.add_argument("--training-seeds", type=int, default=len(defaults.training_seeds),
                            help="Train on phantom seeds 0 … N−1.")  # fmt: skip
        parser.add_argument("--validation-seeds", type=int, default=len(defaults.validation_seeds),
                            help="Validate on phantom seeds 1000 … 1000+N−1 (never trained on).")  # fmt: skip
        parser.add_argument("--validation-rows", type=int, default=defaults.validation_rows,
                            help="CT matrix of the validation phantoms (default 512, as planning CTs).")  # fmt: skip
        parser.add_argument("--threads", type=int, default=defaults.threads, help="torch CPU threads (reproducibility "
                            "depends on it).")  # fmt: skip
        parser.add_argument("--workers", type=int, default=defaults.workers, help="Processes generating phantoms.")

    def handle(self, *args, out: Path, steps: int, seed: int, training_seeds: int, validation_seeds: int,
               validation_rows: int, threads: int, workers: int, **options):  # fmt: skip
        if steps < 1 or training_seeds < 1 or validation_seeds < 1:
            raise CommandError("--steps, --training-seeds and --validation-seeds must be at least 1.")
        if training_seeds > 1000:
            raise CommandError("--training-seeds must be at most 1000: seeds from 1000 up are held out for validation.")
        config = replace(
            TrainingConfig(), steps=steps, seed=seed, training_seeds=tuple(range(training_seeds)),
            validation_seeds=tuple(range(1000, 1000 + validation_seeds)), validation_rows=validation_rows,
            threads=threads, workers=workers,
        )  # fmt: skip
        try:
            card = train_and_export(config, out, log=self.stdout.write)
        except OSError as exc:
            raise CommandError(f"Cannot write the model into {out}: {exc.strerror or exc}.") from exc
        validation = card["validation"]
        message = (
            f"Validation Dice on {len(validation['seeds'])} held-out phantoms: mean {validation['mean_dice']:.3f}, "
            f"min {validation['min_dice']:.3f}; training took {card['training']['total_seconds'] / 60:.1f} min."
        )
        if validation["mean_dice"] >= TARGET_MEAN_DICE:
            self.stdout.write(self.style.SUCCESS(message))
        else:
            self.stdout.write(self.style.WARNING(f"{message} Below the {TARGET_MEAN_DICE} target."))
        self.stdout.write(f"Model card: {Path(out) / 'model_card.json'} — {card['intended_use']}")
