"""Training: the LR schedule, a few real steps lower the loss, exact resume, config layering, CLI errors."""

from __future__ import annotations

import argparse
import csv
import math

import pytest
import torch
import yaml

from fusioncam.cli import main
from fusioncam.cli.train import add_arguments, resolve_config
from fusioncam.errors import FusioncamError
from fusioncam.models.train import TrainConfig, evaluate_model, lr_at, state_path_for, train

TINY = {"width": 8, "depth": 1, "heads": 1}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread avoids oversubscription on a busy 2-core CI machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TestLrAt:
    def test_key_steps(self):
        total = 1000
        assert lr_at(0, total) == pytest.approx(1e-4)
        assert lr_at(200, total) == pytest.approx(1e-3)  # end of the 20% warm-up: the peak
        assert lr_at(total, total) == pytest.approx(1e-4)
        assert lr_at(100, total) == pytest.approx(5.5e-4)  # linear warm-up
        assert lr_at(600, total) == pytest.approx(5.5e-4)  # half-way down the cosine
        assert lr_at(600, total, decay="linear") == pytest.approx(5.5e-4)
        assert lr_at(400, total, decay="cosine") > lr_at(400, total, decay="linear")

    def test_monotone_up_then_down(self):
        lrs = [lr_at(s, 50) for s in range(51)]
        assert all(a < b for a, b in zip(lrs[:10], lrs[1:11], strict=True))
        assert all(a > b for a, b in zip(lrs[10:-1], lrs[11:], strict=True))
        assert max(lrs) == pytest.approx(1e-3)

    def test_custom_rates_and_no_warmup(self):
        assert lr_at(0, 10, base=2e-5, peak=4e-4, warmup_frac=0.0) == pytest.approx(4e-4)
        assert lr_at(10, 10, base=2e-5, peak=4e-4, warmup_frac=0.0) == pytest.approx(2e-5)
        with pytest.raises(ValueError):
            lr_at(0, 0)


def _pairs(data_dir, n=4, dataset="roadscene"):
    from fusioncam.evaluation.dataset import load_split

    return load_split("train", data_dir, [dataset])[dataset][:n]


def _config(**kw):
    base = dict(
        model="mgfusion_fast_noclip", model_overrides=TINY, crop=64, batch_size=2, seed=0, device="cpu"
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


class TestTrain:
    def test_a_few_steps_lower_the_loss(self, data_dir, tmp_path):
        from fusioncam.models.data import FusionPairDataset
        from fusioncam.models.factory import create_model, load_model
        from fusioncam.models.train import _loss_fn

        pairs = _pairs(data_dir, 4)
        cfg = _config(epochs=15, lr_peak=3e-3)
        # A fixed batch: the centre 64 x 64 of each training pair.
        fixed = FusionPairDataset(pairs, crop=64, augment=False)
        ir = torch.stack([fixed[i]["ir"] for i in range(len(fixed))])
        vis = torch.stack([fixed[i]["vis"] for i in range(len(fixed))])

        def loss_of(model):
            model.eval()
            with torch.no_grad():
                return float(_loss_fn(cfg)(model(ir, vis), ir, vis)[0])

        torch.manual_seed(cfg.seed)
        before = loss_of(create_model(cfg.model, **TINY))
        result = train(cfg, pairs, out_dir=tmp_path)
        after = loss_of(load_model(result.checkpoint))
        assert result.steps == 30
        assert after < 0.8 * before, (before, after)
        rows = list(csv.DictReader(open(tmp_path / "log.csv")))
        assert len(rows) == 30 and {"step", "epoch", "loss", "lr", "time_s"} <= set(rows[0])
        assert {"loss_intensity", "loss_gradient"} <= set(rows[0])
        assert float(rows[6]["lr"]) == pytest.approx(lr_at(6, 30, 1e-4, 3e-3))
        ckpts = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.safetensors"))
        assert len(ckpts) == 15 and ckpts[-1] == "epoch_0015.safetensors"

    def test_evaluate_model_reports_loss_and_metrics_per_dataset(self, tmp_path):
        import numpy as np
        from PIL import Image

        from fusioncam.models.factory import create_model
        from fusioncam.models.train import _loss_fn

        rng = np.random.default_rng(0)
        files = []
        for k in range(2):
            a, b = tmp_path / f"ir{k}.png", tmp_path / f"vis{k}.png"
            Image.fromarray(rng.integers(0, 256, (37, 53), dtype=np.uint8)).save(a)
            Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(b)
            files.append((a, b))
        seen = []

        def metric(ir, vis, fused):
            seen.append((ir.dtype, fused.shape))
            return {"mean_f": float(fused.mean())}

        model = create_model("mgfusion_fast_noclip", **TINY)
        ev = evaluate_model(
            model, {"a": files[:1], "b": files}, _loss_fn(_config()), torch.device("cpu"), metric
        )
        assert set(ev["per_dataset"]) == {"a", "b"} and ev["pairs"] == 3
        assert seen == [(np.uint8, (37, 53))] * 3
        assert ev["mean"]["loss"] == pytest.approx(
            (ev["per_dataset"]["a"]["loss"] + ev["per_dataset"]["b"]["loss"]) / 2
        )
        assert model.training  # restored

    def test_resume_continues_with_identical_state(self, data_dir, tmp_path):
        pairs = _pairs(data_dir, 4)
        cfg = _config(epochs=3)
        full = train(cfg, pairs, out_dir=tmp_path / "full")
        ckpt = tmp_path / "full" / "checkpoints" / "epoch_0001.safetensors"
        state = torch.load(state_path_for(ckpt), weights_only=True)
        assert state["step"] == 2 and state["epoch"] == 1
        # Resume from epoch 1 into a fresh folder: the end state must match the uninterrupted run bit for bit.
        resumed = train(cfg, pairs, out_dir=tmp_path / "resumed", resume=ckpt)
        assert resumed.steps == full.steps == 6
        a, b = _weights(full.checkpoint), _weights(resumed.checkpoint)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        rows = list(csv.DictReader(open(tmp_path / "resumed" / "log.csv")))
        assert [int(r["step"]) for r in rows] == [3, 4, 5, 6]

    def test_init_weights_starts_from_a_checkpoint(self, data_dir, tmp_path):
        from fusioncam.models.factory import create_model, load_checkpoint

        pairs = _pairs(data_dir, 2)
        first = train(_config(epochs=1), pairs, out_dir=tmp_path / "a")
        # Zero steps of a warm restart are impossible (epochs >= 1), so check the starting point directly:
        # a one-step run from `first` differs from `first` by one small Adam step only.
        second = train(
            _config(epochs=1, init_weights=str(first.checkpoint), lr_base=1e-9, lr_peak=1e-9),
            pairs,
            out_dir=tmp_path / "b",
        )
        a, b = _weights(first.checkpoint), _weights(second.checkpoint)
        fresh = create_model("mgfusion_fast_noclip", **TINY).trainable_state_dict()
        k = "decoder.out.weight"
        assert torch.allclose(a[k], b[k], atol=1e-6) and not torch.allclose(fresh[k], b[k], atol=1e-3)
        load_checkpoint(create_model("mgfusion_fast_noclip", **TINY), second.checkpoint)
        with pytest.raises(FusioncamError, match="init_weights"):
            train(
                _config(epochs=1, init_weights=str(tmp_path / "none.safetensors")),
                pairs,
                out_dir=tmp_path / "c",
            )

    def test_resume_errors(self, data_dir, tmp_path):
        pairs = _pairs(data_dir, 2)
        with pytest.raises(FusioncamError, match="not found"):
            train(_config(epochs=1), pairs, out_dir=tmp_path, resume=tmp_path / "nope.safetensors")
        train(_config(epochs=1), pairs, out_dir=tmp_path / "a")
        ckpt = tmp_path / "a" / "checkpoints" / "epoch_0001.safetensors"
        state_path_for(ckpt).write_bytes(b"garbage")
        with pytest.raises(FusioncamError, match="cannot read training state"):
            train(_config(epochs=2), pairs, out_dir=tmp_path / "b", resume=ckpt)
        with pytest.raises(FusioncamError, match="fewer than one batch"):
            train(_config(batch_size=8), pairs, out_dir=tmp_path / "c")

    def test_config_validation(self):
        for bad in ({"decay": "step"}, {"lambda_on": "both"}, {"epochs": 0}, {"amp": "fp8"}):
            with pytest.raises(FusioncamError):
                TrainConfig(**bad).validate()


def _parse(argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(argv)


class TestConfigLayering:
    def test_defaults_then_yaml_then_flags(self, tmp_path):
        cfg_file = tmp_path / "c.yaml"
        cfg_file.write_text(yaml.safe_dump({"epochs": 7, "crop": 128, "datasets": ["msrs"], "lr_peak": 5e-4}))
        cfg = resolve_config(_parse(["--config", str(cfg_file), "--crop", "96"]))
        assert cfg.epochs == 7  # from YAML
        assert cfg.crop == 96  # flag beats YAML
        assert cfg.datasets == ["msrs"] and cfg.lr_peak == 5e-4
        assert cfg.batch_size == TrainConfig().batch_size  # default
        assert resolve_config(_parse(["--datasets", "roadscene,m3svd"])).datasets == ["roadscene", "m3svd"]

    def test_unknown_key_suggests_the_closest(self, tmp_path):
        cfg_file = tmp_path / "c.yaml"
        cfg_file.write_text("epoch: 3\n")
        with pytest.raises(FusioncamError, match="unknown config key 'epoch'.*did you mean 'epochs'"):
            resolve_config(_parse(["--config", str(cfg_file)]))

    def test_bad_values(self, tmp_path):
        cfg_file = tmp_path / "c.yaml"
        cfg_file.write_text("epochs: many\n")
        with pytest.raises(FusioncamError, match="'epochs' must be an integer"):
            resolve_config(_parse(["--config", str(cfg_file)]))
        cfg_file.write_text("- a list\n")
        with pytest.raises(FusioncamError, match="must be a mapping"):
            resolve_config(_parse(["--config", str(cfg_file)]))

    def test_yaml_values_are_typed_like_flags(self, tmp_path):
        cfg_file = tmp_path / "c.yaml"
        cfg_file.write_text(
            'datasets: "msrs, m3svd"\nmax_steps: null\nlr_peak: 1\nmodel_overrides: {width: 8}\n'
        )
        cfg = resolve_config(_parse(["--config", str(cfg_file)]))
        assert cfg.datasets == ["msrs", "m3svd"]  # "a,b" as --datasets takes it
        assert cfg.max_steps is None and cfg.lr_peak == 1.0 and isinstance(cfg.lr_peak, float)
        assert cfg.model_overrides == {"width": 8}
        for text, message in (
            ("model_overrides: [1]\n", "'model_overrides' must be a mapping"),
            ("amp: true\n", "'amp' must be a string"),
            ("datasets: 3\n", "'datasets' must be a list"),
        ):
            cfg_file.write_text(text)
            with pytest.raises(FusioncamError, match=message) as e:
                resolve_config(_parse(["--config", str(cfg_file)]))
            assert str(cfg_file) in str(e.value)

    def test_shipped_train_configs_resolve(self):
        from fusioncam.models.factory import CONFIG_DIR, list_models

        files = sorted(CONFIG_DIR.glob("train_*.yaml"))
        assert {f.name for f in files} >= {"train_fast_noclip.yaml", "train_mgfusion.yaml"}
        for f in files:
            cfg = resolve_config(_parse(["--config", str(f)]))
            assert cfg.model in list_models()


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


class TestCli:
    @pytest.mark.parametrize(
        "argv, message",
        [
            (["--config", "/nonexistent/c.yaml"], "not found"),
            (["--model", "mgfusion_fats"], "did you mean 'mgfusion_fast'"),
            (["--resume", "/nonexistent/ckpt.safetensors"], "not found"),
            (["--epochs", "0"], "epochs must be >= 1"),
            (["--init-weights", "/nonexistent/w.safetensors"], "not found"),
            (["--threads", "0"], "--threads must be >= 1"),
        ],
    )
    def test_bad_input_exits_2_with_one_line(self, argv, message, capsys):
        assert main(["train", *argv]) == 2
        assert message in _one_error_line(capsys)

    def test_no_data(self, tmp_path, capsys):
        assert main(["train", "--data", str(tmp_path)]) == 2
        assert "splits.yaml" in _one_error_line(capsys)

    def test_clip_model_without_weights(self, data_dir, tmp_path, capsys):
        argv = ["train", "--data", str(data_dir), "--model", "mgfusion_fast", "--out", str(tmp_path)]
        assert main([*argv, "--clip-weights", "no-such-clip-weights"]) == 2
        assert "CLIP" in _one_error_line(capsys)

    def test_runs_end_to_end(self, data_dir, tmp_path, capsys):
        cfg_file = tmp_path / "c.yaml"
        cfg_file.write_text(yaml.safe_dump({"model_overrides": TINY}))
        out = tmp_path / "run"
        argv = ["train", "--config", str(cfg_file), "--data", str(data_dir), "--datasets", "msrs"]
        argv += ["--crop", "32", "--batch-size", "4", "--max-steps", "2", "--out", str(out), "--no-eval"]
        assert main(argv) == 0
        stdout = capsys.readouterr().out
        assert "done: 2 steps" in stdout and "msrs 14" in stdout
        saved = yaml.safe_load(open(out / "config.yaml"))
        assert saved["crop"] == 32 and saved["model_overrides"] == TINY and saved["max_steps"] == 2
        assert (out / "model.safetensors").is_file() and (
            out / "checkpoints" / "epoch_0001.state.pt"
        ).is_file()
        assert not math.isnan(float(list(csv.DictReader(open(out / "log.csv")))[-1]["loss"]))

        # --resume alone reuses the stored config and folder; a flag on top extends the run.
        ckpt = out / "checkpoints" / "epoch_0001.safetensors"
        assert (
            main(["train", "--data", str(data_dir), "--resume", str(ckpt), "--max-steps", "3", "--no-eval"])
            == 0
        )
        assert "done: 3 steps" in capsys.readouterr().out
        assert [int(r["step"]) for r in csv.DictReader(open(out / "log.csv"))] == [1, 2, 3]
        assert yaml.safe_load(open(out / "config.yaml"))["model_overrides"] == TINY

        ckpt.write_bytes(b"corrupt")
        assert main(["train", "--resume", str(ckpt)]) == 2
        assert "cannot read checkpoint" in _one_error_line(capsys)
