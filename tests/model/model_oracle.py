"""Independent re-statement of the public SAM2-UNeXT / SAM2-UNet structures, for parity tests.

Written from the public code's order of operations (concat-then-upsample decoder, head
computed twice, ``F.interpolate`` defaults, SAM2-UNet's never-applied ReLU in BasicConv2d),
with configurable widths so tiny configs can be compared on CPU. Key names match the public
checkpoints (``sam.blocks.N.block``, ``prompt_learn``, ``dino.model``, ...).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class OracleAdapter(nn.Module):
    def __init__(self, blk):
        super().__init__()
        self.block = blk
        dim = blk.attn.qkv.in_features
        self.prompt_learn = nn.Sequential(nn.Linear(dim, 32), nn.GELU(), nn.Linear(32, dim), nn.GELU())

    def forward(self, x):
        return self.block(x + self.prompt_learn(x))


def _double_conv(cin, cout, mid):
    return nn.Sequential(
        nn.Conv2d(cin, mid, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _DC(nn.Module):
    def __init__(self, cin, cout, mid):
        super().__init__()
        self.double_conv = _double_conv(cin, cout, mid)

    def forward(self, x):
        return self.double_conv(x)


class OracleUpNeXt(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = _DC(cin, cout, cin // 2)

    def forward(self, x1, x2=None):
        if x2 is not None:
            dy, dx = x1.size(2) - x2.size(2), x1.size(3) - x2.size(3)
            x2 = F.pad(x2, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
            x = torch.cat([x1, x2], dim=1)
        else:
            x = x1
        return self.conv(self.up(x))


class OracleUpUNet(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = _DC(cin, cout, cin // 2)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy, dx = x2.size(2) - x1.size(2), x2.size(3) - x1.size(3)
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OracleSAM2UNeXT(nn.Module):
    """Public SAM2-UNeXT forward with pluggable trunk/dino and widths."""

    def __init__(self, trunk, dino, stage_dims, dino_width, c, low_res):
        super().__init__()
        self.sam = trunk
        self.sam.blocks = nn.Sequential(*[OracleAdapter(b) for b in self.sam.blocks])
        self.dino = dino
        self.low_res = low_res
        s = stage_dims
        self.align1, self.align2, self.align3, self.align4 = (nn.Conv2d(dino_width, d, 1) for d in s)
        self.reduce1, self.reduce2, self.reduce3, self.reduce4 = (nn.Conv2d(2 * d, c, 1) for d in s)
        self.up1, self.up2, self.up3 = OracleUpNeXt(2 * c, c), OracleUpNeXt(2 * c, c), OracleUpNeXt(2 * c, c)
        self.up4 = OracleUpNeXt(c, c)
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        x1_s, x2_s, x3_s, x4_s = self.trunk_features(x)
        x_d = self.dino(F.interpolate(x, size=(self.low_res, self.low_res), mode="bilinear"))[-1]
        x1_d = F.interpolate(self.align1(x_d), size=x1_s.shape[-2:], mode="bilinear")
        x2_d = F.interpolate(self.align2(x_d), size=x2_s.shape[-2:], mode="bilinear")
        x3_d = F.interpolate(self.align3(x_d), size=x3_s.shape[-2:], mode="bilinear")
        x4_d = F.interpolate(self.align4(x_d), size=x4_s.shape[-2:], mode="bilinear")
        x1 = self.reduce1(torch.cat([x1_s, x1_d], dim=1))
        x2 = self.reduce2(torch.cat([x2_s, x2_d], dim=1))
        x3 = self.reduce3(torch.cat([x3_s, x3_d], dim=1))
        x4 = self.reduce4(torch.cat([x4_s, x4_d], dim=1))
        x = self.up4(x4)
        x = self.up3(x, x3)
        x = self.up2(x, x2)
        x = self.up1(x, x1)
        out = self.head(x)  # computed twice, as in the public code
        out = F.interpolate(self.head(x), scale_factor=2, mode="bilinear")
        return out

    def trunk_features(self, x):
        if hasattr(self.sam, "forward_intermediates"):  # timm HieraDet
            return self.sam.forward_intermediates(x, intermediates_only=True)
        return self.sam(x)  # sam2 Hiera returns the four stage maps


class _BasicConv(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0, dilation=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.bn(self.conv(x))


class _RFB(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.relu = nn.ReLU(True)
        self.branch0 = nn.Sequential(_BasicConv(cin, cout, 1))
        for i, k in ((1, 3), (2, 5), (3, 7)):
            setattr(
                self,
                f"branch{i}",
                nn.Sequential(
                    _BasicConv(cin, cout, 1),
                    _BasicConv(cout, cout, (1, k), padding=(0, k // 2)),
                    _BasicConv(cout, cout, (k, 1), padding=(k // 2, 0)),
                    _BasicConv(cout, cout, 3, padding=k, dilation=k),
                ),
            )
        self.conv_cat = _BasicConv(4 * cout, cout, 3, padding=1)
        self.conv_res = _BasicConv(cin, cout, 1)

    def forward(self, x):
        x_cat = self.conv_cat(torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1))
        return self.relu(x_cat + self.conv_res(x))


class OracleSAM2UNet(nn.Module):
    def __init__(self, trunk, stage_dims, c):
        super().__init__()
        self.encoder = trunk
        self.encoder.blocks = nn.Sequential(*[OracleAdapter(b) for b in self.encoder.blocks])
        self.rfb1, self.rfb2, self.rfb3, self.rfb4 = (_RFB(d, c) for d in stage_dims)
        self.up1, self.up2, self.up3, self.up4 = (OracleUpUNet(2 * c, c) for _ in range(4))
        self.side1 = nn.Conv2d(c, 1, 1)
        self.side2 = nn.Conv2d(c, 1, 1)
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        if hasattr(self.encoder, "forward_intermediates"):
            x1, x2, x3, x4 = self.encoder.forward_intermediates(x, intermediates_only=True)
        else:
            x1, x2, x3, x4 = self.encoder(x)
        x1, x2, x3, x4 = self.rfb1(x1), self.rfb2(x2), self.rfb3(x3), self.rfb4(x4)
        x = self.up1(x4, x3)
        out1 = F.interpolate(self.side1(x), scale_factor=16, mode="bilinear")
        x = self.up2(x, x2)
        out2 = F.interpolate(self.side2(x), scale_factor=8, mode="bilinear")
        x = self.up3(x, x1)
        out = F.interpolate(self.head(x), scale_factor=4, mode="bilinear")
        return out, out1, out2


def sam2_hiera_for(preset):
    """Meta's own ``sam2`` Hiera with the preset's trunk configuration."""
    from sam2.modeling.backbones.hieradet import Hiera

    kw = preset.hiera_kwargs
    return Hiera(
        embed_dim=kw["embed_dim"],
        num_heads=kw["num_heads"],
        stages=tuple(kw["stages"]),
        global_att_blocks=tuple(kw["global_att_blocks"]),
        window_spec=tuple(kw["window_spec"]),
        window_pos_embed_bkg_spatial_size=tuple(kw["global_pos_size"]),
    )


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter and BN buffer with seeded, well-scaled random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1 and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim >= 2 and not name.endswith(("pos_embed", "pos_embed_window", "cls_token")):
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
    return module


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()
