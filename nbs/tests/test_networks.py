"Quick CPU checks of the networks and losses (spine_nb.networks, spine_nb.losses), and of the Payer plan's stage → network map."
import json
import pytest
import torch

from spine_nb.networks import NETWORKS, build_network, count_parameters, SCNOutput
from spine_nb.losses import HeatmapLoss, SegmentationLoss, SpineHeatmapLoss, spine_heatmap, heatmap_argmax

SPINE, SCN, SEG = "SpineLocalizationNet", "SpatialConfigurationNet", "VertebraSegmentationNet"
TINY = {SPINE: dict(filters=4, levels=3), SCN: dict(num_landmarks=4, filters=4, levels=3, spatial_downsample=4, sc_kernel=3),
        SEG: dict(filters=4, levels=3)}
IN_CH = {SPINE: 1, SCN: 1, SEG: 2}


@pytest.mark.parametrize("name", list(TINY))
def test_forward_backward(name):
    torch.manual_seed(0)
    net = build_network(name, **TINY[name])
    x = torch.randn(2, IN_CH[name], 16, 8, 8)
    out = net(x)
    if name == SCN:
        assert isinstance(out, SCNOutput) and all(o.shape == (2, 4, 16, 8, 8) for o in out)
        pts = torch.tensor([[[4.0, 4, 4], [8, 4, 4], [12, 4, 4], [0, 0, 0]]] * 2)
        loss = HeatmapLoss(scale=100, alpha=1)(out, pts, torch.tensor([[1, 1, 1, 0]] * 2), net.sigmas)
    elif name == SPINE:
        assert out.shape == (2, 1, 16, 8, 8)
        loss = SpineHeatmapLoss()(out, spine_heatmap(torch.tensor([[[8.0, 4, 4]]] * 2), None, (16, 8, 8)))
    else:
        assert out.shape == (2, 1, 16, 8, 8)
        loss = SegmentationLoss()(out, (torch.rand(2, 1, 16, 8, 8) > 0.5).float())
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if name == SCN:
        assert net.sigmas.grad[:3].abs().min() > 0 and net.sigmas.grad[3] == 0


@pytest.mark.parametrize("name", list(TINY))
def test_build_network_round_trip(name):
    net = build_network(name, **TINY[name]).eval()
    cfg = json.loads(json.dumps(net.config))  # as stored next to a checkpoint
    twin = build_network(**cfg).eval()
    twin.load_state_dict(net.state_dict())
    x = torch.randn(1, IN_CH[name], 16, 8, 8)
    a, b = net(x), twin(x)
    a, b = (a.heatmaps, b.heatmaps) if name == SCN else (a, b)
    torch.testing.assert_close(a, b)
    assert count_parameters(net) == count_parameters(twin) > 0


def test_bad_inputs():
    net = build_network(SCN, **TINY[SCN])
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 1, 18, 8, 8))
    with pytest.raises(ValueError, match="input channel"):
        net(torch.randn(1, 2, 16, 8, 8))
    with pytest.raises(ValueError, match=r"unknown network 'vertebrae'; choose one of \['SpineLocalizationNet'"):
        build_network("vertebrae")  # a Payer stage name is not a network
    with pytest.raises(ValueError, match="unknown argument"):
        build_network(SPINE, num_levels=3)
    assert set(NETWORKS) == set(TINY) and all(NETWORKS[k].__name__ == k for k in NETWORKS)


def test_stage_networks_of_the_plan():
    "The Payer plan maps each of its stages to a registered network and builds it from the stage's config."
    from spine_nb.methods.payer.plan import STAGES, STAGE_NETWORKS, build_stage_network, get_config
    assert tuple(STAGE_NETWORKS) == STAGES and set(STAGE_NETWORKS.values()) <= set(NETWORKS)
    for stage in STAGES:
        net = build_stage_network(stage, **get_config(stage, "tiny").network_config())
        assert type(net).__name__ == STAGE_NETWORKS[stage] == net.config["name"]
        build_stage_network(stage, **json.loads(json.dumps(net.config))).load_state_dict(net.state_dict())  # as stored with a checkpoint
    with pytest.raises(ValueError, match=r"choose one of \['spine', 'vertebrae', 'segmentation'\]"):
        build_stage_network("SpatialConfigurationNet")
    with pytest.raises(ValueError, match="the spine network is a SpineLocalizationNet"):
        build_stage_network("spine", **build_network(SCN, **TINY[SCN]).config)


@pytest.mark.parametrize("name", list(TINY))
def test_channels_last_3d_cpu(name):
    torch.manual_seed(0)
    net = build_network(name, **TINY[name]).eval()
    x = torch.randn(1, IN_CH[name], 16, 8, 8)
    ref = net(x)
    net_cl = net.to(memory_format=torch.channels_last_3d)
    out = net_cl(x.to(memory_format=torch.channels_last_3d))
    ref, out = (ref.heatmaps, out.heatmaps) if name == SCN else (ref, out)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_argmax_matches_peak():
    hm = torch.zeros(1, 2, 6, 6, 6); hm[0, 1, 1, 2, 3] = 1
    assert heatmap_argmax(hm)[0][0, 1].tolist() == [1, 2, 3]
