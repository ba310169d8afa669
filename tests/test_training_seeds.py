"""training.experiments.seeds: a real training run per seed, the choice made on validation."""

import json

from tests.test_training import synthetic_rows, write_csv
from training.experiments.seeds import main as seeds_main
from training.experiments.seeds import selection_score

TINY = ["--embed-dim", "16", "--hidden-size", "8", "--epochs", "2", "--batch-size", "32",
        "--min-freq", "1", "--threads", "1", "--no-progress", "--no-report"]  # fmt: skip


def test_each_seed_trains_its_own_model_and_the_best_validation_score_is_chosen(tmp_path):
    # `{seed}` in a flag becomes each run's seed (each seed's own teachers, in `make seeds`).
    for s in (3, 4):
        write_csv(tmp_path / f"data-{s}.csv", synthetic_rows(400, seed=5))
    out = tmp_path / "seeds"
    flags = ["--", "--source", str(tmp_path / "data-{seed}.csv"), *TINY]
    assert seeds_main(["--seeds", "3,4", "--jobs", "2", "--out", str(out), *flags]) == 0
    result = json.loads((out / "seeds.json").read_text())
    seeds = {int(k): v for k, v in result["seeds"].items()}
    assert sorted(seeds) == [3, 4]
    assert result["chosen"] == max(seeds, key=lambda s: selection_score(seeds[s]))
    versions = {json.loads((out / f"seed-{s}" / "config.json").read_text())["version"]
                for s in seeds}  # fmt: skip
    assert len(versions) == 2  # another seed, other weights
    for s, f in seeds.items():
        metrics = json.loads((out / f"seed-{s}" / "metrics.json").read_text())
        assert metrics["train_config"]["seed"] == s
        assert metrics["source"] == str(tmp_path / f"data-{s}.csv")
        assert f["val"]["macro_f1"] == round(metrics["validation"]["macro_f1"], 4)
        assert f["dev"]["accuracy"] > 0 and f["test"]["accuracy"] > 0
    rows = (out / "seeds.md").read_text().splitlines()
    assert len(rows) == 2 + 2 + 1  # header, rule, a row a seed, mean ± std
    assert "(chosen)" in rows[2 + sorted(seeds).index(result["chosen"])]

    # --reuse scores the trained seeds again instead of training them.
    log = out / "seed-3.log"
    before = log.stat().st_mtime_ns
    assert seeds_main(["--seeds", "3,4", "--reuse", "--out", str(out), *flags]) == 0
    assert log.stat().st_mtime_ns == before
    assert json.loads((out / "seeds.json").read_text()) == result


def test_flags_that_set_the_seed_or_the_output_are_refused(tmp_path, capsys):
    rc = seeds_main(["--out", str(tmp_path), "--", "--seed", "5"])
    assert rc == 2
    assert "must not set --seed or --out" in capsys.readouterr().err
