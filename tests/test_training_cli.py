"""The training commands' shared set-up: flat flags for the nested network config, run_main."""

import argparse
import json
from pathlib import Path

import pytest

from model.network import NetworkConfig
from training import pretrain
from training.__main__ import main as train_main
from training.cli import NOT_FLAGS, Invocation, config_kwargs, run_main, train_parser
from training.evaluate import main as evaluate_main
from training.finetune import main as finetune_main
from training.train import TrainConfig

SHIPPED = Path(__file__).resolve().parents[1] / "model" / "default"


def train_config(argv: list[str]) -> TrainConfig:
    args = train_parser().parse_args(["--out", "x", *argv])
    return TrainConfig(**config_kwargs(args, TrainConfig, NOT_FLAGS))


def pretrain_config(argv: list[str]) -> pretrain.PretrainConfig:
    args = pretrain.build_parser().parse_args(["--out", "x", *argv])
    return pretrain.PretrainConfig(
        **config_kwargs(args, pretrain.PretrainConfig, pretrain.NOT_LM_FIELDS)
    )


def test_flat_flags_set_the_nested_network_of_the_train_config():
    cfg = train_config(
        [
            "--hidden-size",
            "48",
            "--dropout",
            "0.25",
            "--pooling",
            "attention",
            "--bidirectional",
            "false",
            "--epochs",
            "2",
        ]
    )
    assert cfg.network == NetworkConfig(
        hidden_size=48, dropout=0.25, pooling="attention", bidirectional=False
    )
    assert cfg.epochs == 2
    assert train_config([]) == TrainConfig()


def test_flat_flags_set_the_nested_network_of_the_pretrain_config():
    cfg = pretrain_config(["--embed-dim", "16", "--hidden-size", "24", "--num-layers", "2"])
    # the flags left alone keep the language model's own dropout, not the classifier's
    assert cfg.network == NetworkConfig(
        embed_dim=16, hidden_size=24, num_layers=2, dropout=0.1, embed_dropout=0.05
    )
    assert pretrain_config([]) == pretrain.PretrainConfig()
    assert pretrain.PretrainConfig().network != TrainConfig().network


def test_the_lm_has_no_pooling_flag():
    with pytest.raises(SystemExit) as e:
        pretrain.build_parser().parse_args(["--out", "x", "--pooling", "max"])
    assert e.value.code == 2
    assert "pooling" not in pretrain.PretrainConfig().to_dict()


def test_the_shipped_models_flat_train_config_reads_back():
    """Artifacts record train_config flat; a TrainConfig rebuilt from one records it the same."""
    recorded = json.loads((SHIPPED / "config.json").read_text(encoding="utf-8"))["train_config"]
    cfg = TrainConfig(**{**recorded, "labels": tuple(recorded["labels"])})
    assert cfg.network.hidden_size == recorded["hidden_size"]
    written = cfg.to_dict()
    # Fields added after the artifact was made read back at their defaults, which leave the
    # recipe as it was; the recorded ones keep their values and order (byte for byte JSON).
    defaults = TrainConfig().to_dict()
    assert {k: v for k, v in written.items() if k not in recorded} == {
        k: defaults[k] for k in written if k not in recorded
    }
    assert [k for k in written if k in recorded] == list(recorded)
    assert {k: written[k] for k in recorded} == recorded


def test_flat_keywords_also_work_through_dataclasses_replace():
    import dataclasses

    cfg = dataclasses.replace(TrainConfig(dropout=0.3), hidden_size=32, epochs=1)
    assert cfg.network == NetworkConfig(hidden_size=32, dropout=0.3) and cfg.epochs == 1


@pytest.mark.parametrize(
    ("main", "argv", "message"),
    [
        (train_main, ["--pooling", "sideways"], "pooling must be one of"),
        (train_main, ["--dropout", "1.5"], "dropout"),
        (train_main, ["--hidden-size", "0"], "hidden_size"),
        (train_main, ["--schedule", "sideways"], "schedule must be"),
        (pretrain.main, ["--embed-dropout", "-0.1"], "embed_dropout"),
        (pretrain.main, ["--max-len", "1"], "max_len must be >= 2"),
    ],
)
def test_a_bad_config_value_exits_2_naming_the_field(main, argv, message, tmp_path, capsys):
    assert main(["--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_a_value_of_the_wrong_type_exits_2_naming_the_flag(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        pretrain.main(["--out", str(tmp_path), "--hidden-size", "many"])
    assert e.value.code == 2
    assert "--hidden-size" in capsys.readouterr().err


def test_missing_files_and_artifacts_exit_2(tmp_path, capsys):
    assert finetune_main(["--base", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read the base model's labels" in capsys.readouterr().err
    assert evaluate_main(["--data", str(tmp_path / "missing.csv"), "--device", "cpu"]) == 2
    assert "missing.csv" in capsys.readouterr().err


def test_run_main_hands_the_body_the_command_as_typed_and_its_exit_code():
    p = argparse.ArgumentParser(prog="python -m training.thing")
    p.add_argument("--name")
    p.add_argument("--device", default="cpu")
    seen: list[Invocation] = []
    assert run_main(p, ["--name", "a b"], lambda inv: seen.append(inv) or 3) == 3
    (inv,) = seen
    assert inv.command == "python -m training.thing --name 'a b'"
    assert inv.args.name == "a b" and inv.device.type == "cpu"
    assert run_main(p, [], lambda inv: None) == 0
