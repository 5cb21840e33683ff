"""The frozen CLIP image encoder and CLIP weight resolution (no network: tiny random open_clip model)."""

from __future__ import annotations

import time

import pytest
import torch

from fusioncam.cli import main as cli_main
from fusioncam.errors import FusioncamError
from fusioncam.models.clip_encoder import (
    ClipImageEncoder,
    clip_embed_dim,
    resolve_clip_weights,
    save_tiny_clip,
)

HF_REPO_DIR = "models--timm--vit_base_patch32_clip_224.openai"  # open_clip's hf_hub for ViT-B-32/openai


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> tuple[str, str]:
    return save_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def encoder(tiny_clip) -> ClipImageEncoder:
    name, path = tiny_clip
    return ClipImageEncoder(name, weights=path, allow_download=False)


class TestResolve:
    def test_nothing_found_is_a_clear_error_fast(self, tmp_path):
        t0 = time.perf_counter()
        with pytest.raises(FusioncamError) as e:
            resolve_clip_weights("ViT-B-32", "openai", cache_dir=tmp_path, allow_download=False)
        assert time.perf_counter() - t0 < 5  # a sanity bound, not a benchmark: no network wait
        msg = str(e.value)
        assert "not found" in msg and "fusioncam weights fetch" in msg and "--clip-weights FILE" in msg
        assert str(tmp_path) in msg and "\n" not in msg

    def test_offline_download_fails_fast_and_clearly(self, tmp_path, monkeypatch):
        import socket

        probes = []

        def no_network(addr, timeout=None):
            probes.append((addr, timeout))
            raise OSError("unreachable")

        monkeypatch.setattr(socket, "create_connection", no_network)
        with pytest.raises(
            FusioncamError, match="no network .*huggingface.co.* 0.5 s.*fusioncam weights fetch"
        ):
            resolve_clip_weights("ViT-B-32", "openai", cache_dir=tmp_path, allow_download=True, timeout=0.5)
        assert probes and all(t == 0.5 for _, t in probes)

    def test_explicit_file_wins(self, tiny_clip, tmp_path):
        _, path = tiny_clip
        assert resolve_clip_weights("ViT-B-32", path, cache_dir=tmp_path, allow_download=False) == path

    def test_missing_explicit_file(self, tmp_path):
        with pytest.raises(FusioncamError, match="CLIP weight file not found"):
            resolve_clip_weights("ViT-B-32", str(tmp_path / "w.safetensors"), allow_download=False)

    def test_unknown_tag_and_model(self, tmp_path):
        with pytest.raises(FusioncamError, match="unknown CLIP weights 'nonsense'.*openai"):
            resolve_clip_weights("ViT-B-32", "nonsense", cache_dir=tmp_path, allow_download=False)
        with pytest.raises(FusioncamError, match="unknown CLIP model"):
            resolve_clip_weights("ViT-Q-99", "openai", cache_dir=tmp_path, allow_download=False)

    def test_found_in_hugging_face_cache(self, tmp_path):
        snap = tmp_path / HF_REPO_DIR / "snapshots" / "abc123"
        snap.mkdir(parents=True)
        (tmp_path / HF_REPO_DIR / "refs").mkdir()
        (tmp_path / HF_REPO_DIR / "refs" / "main").write_text("abc123")
        (snap / "open_clip_model.safetensors").write_bytes(b"x")
        got = resolve_clip_weights("ViT-B-32", "openai", cache_dir=tmp_path, allow_download=False)
        assert got.endswith("open_clip_model.safetensors") and "abc123" in got

    def test_found_in_open_clip_url_cache(self, tmp_path):
        (tmp_path / "ViT-B-32.pt").write_bytes(b"x")
        got = resolve_clip_weights("ViT-B-32", "openai", cache_dir=tmp_path, allow_download=False)
        assert got == str(tmp_path / "ViT-B-32.pt")

    def test_embed_dim_from_config(self):
        assert clip_embed_dim("ViT-B-32") == 512


class TestEncoder:
    def test_loads_saved_weights_through_resolve_path(self, tiny_clip, encoder):
        from safetensors.torch import load_file

        _, path = tiny_clip
        saved = load_file(path)
        own = encoder.visual.state_dict()
        assert own and all(torch.equal(own[k], saved["visual." + k]) for k in own)
        assert encoder.weights_path == path

    @pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
    def test_loads_openai_torchscript_release(self, tiny_clip, tmp_path):
        # OpenAI's own ViT-B-32.pt is a TorchScript archive (not readable with weights_only=True)
        import open_clip

        name, path = tiny_clip
        model = open_clip.create_model(name, pretrained=path)
        archive = tmp_path / "ViT-tiny.pt"
        with pytest.warns(FutureWarning):  # torch.jit.save is deprecated, but that is the format
            torch.jit.save(torch.jit.script(model), str(archive))
        enc = ClipImageEncoder(name, weights=archive, allow_download=False)
        x = torch.rand(2, 1, 20, 30)
        ref = ClipImageEncoder(name, weights=path, allow_download=False)
        assert torch.allclose(enc.encode(x), ref.encode(x), atol=1e-6)

    def test_frozen_and_always_eval(self, encoder):
        assert all(not p.requires_grad for p in encoder.parameters())
        encoder.train()
        assert not encoder.training and not any(m.training for m in encoder.modules())

    def test_encode_shape_and_normalised(self, encoder):
        x = torch.rand(3, 1, 37, 53)
        e = encoder.encode(x)
        assert e.shape == (3, encoder.embed_dim) and not e.requires_grad
        assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)

    def test_batch_equals_single(self, encoder):
        x = torch.rand(2, 1, 40, 30)
        e = encoder.encode(x)
        assert torch.allclose(e[1:], encoder.encode(x[1:]), atol=1e-5)

    def test_preprocess_size_gray_and_stats(self, encoder):
        size = encoder.image_size
        assert size == (32, 32)  # from the model config, not a literal in the encoder
        x = torch.rand(2, 1, 37, 53)
        p = encoder.preprocess(x)
        assert p.shape == (2, 3, *size)
        assert torch.allclose(p, encoder.preprocess(x.expand(-1, 3, -1, -1)))
        mean = torch.tensor(encoder.preprocess_cfg["mean"]).view(1, 3, 1, 1)
        const = mean.mean().expand(1, 1, 50, 70).clone()
        out = encoder.preprocess(const)
        std = torch.tensor(encoder.preprocess_cfg["std"]).view(1, 3, 1, 1)
        assert torch.allclose(out, (const.mean() - mean) / std * torch.ones_like(out), atol=1e-5)

    def test_preprocess_crops_the_centre(self, encoder):
        # a wide image: the shortest side is resized to 32 and the centre 32 columns are kept
        x = torch.zeros(1, 1, 32, 96)
        x[..., 32:64] = 1.0
        assert torch.allclose(encoder.preprocess(x), encoder.preprocess(torch.ones(1, 1, 32, 32)))

    def test_rejects_bad_input(self, encoder):
        with pytest.raises(ValueError, match="N x 1\\|3 x H x W"):
            encoder.encode(torch.rand(1, 2, 8, 8))

    def test_corrupt_weights_are_a_clear_error(self, tiny_clip, tmp_path):
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(b"garbage")
        with pytest.raises(FusioncamError, match="could not load CLIP weights"):
            ClipImageEncoder(tiny_clip[0], weights=bad, allow_download=False)


class TestWeightsCommand:
    def test_where_reports_missing(self, tmp_path, capsys):
        rc = cli_main(["weights", "where", "--cache-dir", str(tmp_path)])
        out = capsys.readouterr().out
        assert rc == 1 and "not found" in out and str(tmp_path) in out

    def test_where_reports_found(self, tmp_path, capsys):
        (tmp_path / "ViT-B-32.pt").write_bytes(b"x")
        rc = cli_main(["weights", "where", "--cache-dir", str(tmp_path)])
        assert rc == 0 and f"found: {tmp_path / 'ViT-B-32.pt'}" in capsys.readouterr().out

    def test_fetch_uses_cache_without_network(self, tmp_path, capsys):
        (tmp_path / "ViT-B-32.pt").write_bytes(b"x")
        rc = cli_main(["weights", "fetch", "--cache-dir", str(tmp_path), "--timeout", "1"])
        assert rc == 0 and str(tmp_path / "ViT-B-32.pt") in capsys.readouterr().out

    def test_fetch_unknown_tag_is_one_line_error(self, tmp_path, capsys):
        rc = cli_main(["weights", "fetch", "--pretrained", "nonsense", "--cache-dir", str(tmp_path)])
        err = capsys.readouterr().err
        assert rc == 2 and "unknown CLIP weights 'nonsense'" in err and "Traceback" not in err
