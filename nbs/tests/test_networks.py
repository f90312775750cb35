"Quick CPU checks of the stage networks and losses (spine_nb.networks, spine_nb.losses)."
import json
import pytest
import torch

from spine_nb.networks import build_network, count_parameters, SCNOutput, PAPER_CONFIGS
from spine_nb.losses import HeatmapLoss, SegmentationLoss, SpineHeatmapLoss, spine_heatmap, heatmap_argmax

TINY = {"spine": dict(filters=4, levels=3), "vertebrae": dict(num_landmarks=4, filters=4, levels=3, spatial_downsample=4, sc_kernel=3),
        "segmentation": dict(filters=4, levels=3)}
IN_CH = {"spine": 1, "vertebrae": 1, "segmentation": 2}


@pytest.mark.parametrize("stage", list(TINY))
def test_forward_backward(stage):
    torch.manual_seed(0)
    net = build_network(stage, **TINY[stage])
    x = torch.randn(2, IN_CH[stage], 16, 8, 8)
    out = net(x)
    if stage == "vertebrae":
        assert isinstance(out, SCNOutput) and all(o.shape == (2, 4, 16, 8, 8) for o in out)
        pts = torch.tensor([[[4.0, 4, 4], [8, 4, 4], [12, 4, 4], [0, 0, 0]]] * 2)
        loss = HeatmapLoss(scale=100, alpha=1)(out, pts, torch.tensor([[1, 1, 1, 0]] * 2), net.sigmas)
    elif stage == "spine":
        assert out.shape == (2, 1, 16, 8, 8)
        loss = SpineHeatmapLoss()(out, spine_heatmap(torch.tensor([[[8.0, 4, 4]]] * 2), None, (16, 8, 8)))
    else:
        assert out.shape == (2, 1, 16, 8, 8)
        loss = SegmentationLoss()(out, (torch.rand(2, 1, 16, 8, 8) > 0.5).float())
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if stage == "vertebrae":
        assert net.sigmas.grad[:3].abs().min() > 0 and net.sigmas.grad[3] == 0


@pytest.mark.parametrize("stage", list(TINY))
def test_build_network_round_trip(stage):
    net = build_network(stage, **TINY[stage]).eval()
    cfg = json.loads(json.dumps(net.config))  # as stored next to a checkpoint
    twin = build_network(**cfg).eval()
    twin.load_state_dict(net.state_dict())
    x = torch.randn(1, IN_CH[stage], 16, 8, 8)
    a, b = net(x), twin(x)
    a, b = (a.heatmaps, b.heatmaps) if stage == "vertebrae" else (a, b)
    torch.testing.assert_close(a, b)
    assert count_parameters(net) == count_parameters(twin) > 0


def test_bad_inputs():
    net = build_network("vertebrae", **TINY["vertebrae"])
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 1, 18, 8, 8))
    with pytest.raises(ValueError, match="input channel"):
        net(torch.randn(1, 2, 16, 8, 8))
    with pytest.raises(ValueError, match="unknown stage"):
        build_network("vertebra")
    with pytest.raises(ValueError, match="unknown argument"):
        build_network("spine", num_levels=3)
    assert set(PAPER_CONFIGS) == set(TINY)


@pytest.mark.parametrize("stage", list(TINY))
def test_channels_last_3d_cpu(stage):
    torch.manual_seed(0)
    net = build_network(stage, **TINY[stage]).eval()
    x = torch.randn(1, IN_CH[stage], 16, 8, 8)
    ref = net(x)
    net_cl = net.to(memory_format=torch.channels_last_3d)
    out = net_cl(x.to(memory_format=torch.channels_last_3d))
    ref, out = (ref.heatmaps, out.heatmaps) if stage == "vertebrae" else (ref, out)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_argmax_matches_peak():
    hm = torch.zeros(1, 2, 6, 6, 6); hm[0, 1, 1, 2, 3] = 1
    assert heatmap_argmax(hm)[0][0, 1].tolist() == [1, 2, 3]
