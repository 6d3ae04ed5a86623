"""The Fixed-Point GAN reference, written from its published architecture, as the benchmarks' yardstick.

Written here from the description of the reference's ``model.py`` and ``solver.py`` (not copied):

- Generator (``conv_dim=64``, ``repeat_num=6``): the domain one-hot tiled as extra input channels; 7x7
  conv, two 4x4 stride-2 convs doubling the channels, ``repeat_num`` residual blocks (3x3 conv, IN, ReLU,
  3x3 conv, IN, skip), two 4x4 stride-2 transposed convs halving them, 7x7 conv to the image channels;
  every conv without bias and followed by an affine instance norm with running statistics and ReLU;
  output ``tanh(delta + x)``.
- Discriminator (``conv_dim=64``, ``repeat_num=6``): 4x4 stride-2 convs with bias and LeakyReLU(0.01),
  doubling the channels; a 3x3 conv to one channel (realness patches) and a conv with a kernel the size of
  the final map to the domain logits, both without bias.
- One iteration (WGAN-GP): critic step every iteration (real, fake, classification of the real images,
  gradient penalty at random interpolates); every ``n_critic`` iterations a generator step with the
  adversarial and classification terms of ``G(x, c_trg)`` and of the identity translation ``G(x, c_org)``,
  the cycle of both and the identity L1. Plain ``torch.optim.Adam`` (lr 1e-4, betas 0.5/0.999).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ReferenceDiscriminator", "ReferenceGenerator", "ReferenceIteration"]


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _norm(channels),
                                  nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
                                  _norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class ReferenceGenerator(nn.Module):
    """``G(x, c)``: ``x`` ``(B, image_channels, N, N)``, ``c`` ``(B, num_domains)`` one-hot."""

    def __init__(self, conv_dim: int = 64, num_domains: int = 2, repeat_num: int = 6, image_channels: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(image_channels + num_domains, conv_dim, 7, 1, 3, bias=False),
                                   _norm(conv_dim), nn.ReLU(inplace=True)]
        dim = conv_dim
        for _ in range(2):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False), _norm(dim * 2), nn.ReLU(inplace=True)]
            dim *= 2
        layers += [_ResidualBlock(dim) for _ in range(repeat_num)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1, bias=False), _norm(dim // 2), nn.ReLU(inplace=True)]
            dim //= 2
        layers.append(nn.Conv2d(dim, image_channels, 7, 1, 3, bias=False))
        self.main = nn.Sequential(*layers)
        self.image_channels = image_channels

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        tiled = c.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        delta = self.main(torch.cat([x, tiled], dim=1))
        return torch.tanh(delta + x)


class ReferenceDiscriminator(nn.Module):
    """``D(x) -> (realness patches, domain logits)``."""

    def __init__(self, image_size: int = 256, conv_dim: int = 64, num_domains: int = 2, repeat_num: int = 6,
                 image_channels: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(image_channels, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            dim *= 2
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(dim, num_domains, image_size // 2**repeat_num, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.conv1(h), self.conv2(h).flatten(1)


class ReferenceIteration:
    """One training iteration of the reference on a fixed batch held on ``device`` (no data loading)."""

    def __init__(self, image_size: int, batch_size: int, device: torch.device, n_critic: int = 5, bf16: bool = False,
                 lambda_cls: float = 1.0, lambda_rec: float = 10.0, lambda_gp: float = 10.0, lambda_id: float = 10.0
                 ) -> None:
        torch.manual_seed(0)
        self.G = ReferenceGenerator().to(device)
        self.D = ReferenceDiscriminator(image_size).to(device)
        self.g_optimizer = torch.optim.Adam(self.G.parameters(), 1e-4, betas=(0.5, 0.999))
        self.d_optimizer = torch.optim.Adam(self.D.parameters(), 1e-4, betas=(0.5, 0.999))
        self.x = torch.rand(batch_size, 1, image_size, image_size, device=device) * 2 - 1
        self.label = torch.arange(batch_size, device=device) % 2
        self.n_critic, self.bf16, self.device = n_critic, bf16, device
        self.lambdas = lambda_cls, lambda_rec, lambda_gp, lambda_id
        self.iteration = 0

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def __call__(self) -> None:
        lambda_cls, lambda_rec, lambda_gp, lambda_id = self.lambdas
        x, label_org = self.x, self.label
        label_trg = label_org[torch.randperm(label_org.shape[0], device=self.device)]
        c_org, c_trg = F.one_hot(label_org, 2).float(), F.one_hot(label_trg, 2).float()
        with self._autocast():
            out_src, out_cls = self.D(x)
            d_loss_real = -out_src.float().mean()
            d_loss_cls = F.cross_entropy(out_cls.float(), label_org)
            x_fake = self.G(x, c_trg)
            out_src, _ = self.D(x_fake.detach())
            d_loss_fake = out_src.float().mean()
            alpha = torch.rand(x.shape[0], 1, 1, 1, device=self.device)
            x_hat = (alpha * x + (1 - alpha) * x_fake.detach().float()).requires_grad_(True)
            out_src, _ = self.D(x_hat)
            (grad,) = torch.autograd.grad(out_src, x_hat, torch.ones_like(out_src), create_graph=True)
            d_loss_gp = ((grad.float().flatten(1).norm(2, dim=1) - 1) ** 2).mean()
        d_loss = d_loss_real + d_loss_fake + lambda_cls * d_loss_cls + lambda_gp * d_loss_gp
        self.d_optimizer.zero_grad()
        d_loss.backward()
        self.d_optimizer.step()
        self.iteration += 1
        if self.iteration % self.n_critic:
            return
        with self._autocast():
            x_fake = self.G(x, c_trg)
            out_src, out_cls = self.D(x_fake)
            g_loss_fake = -out_src.float().mean()
            g_loss_cls = F.cross_entropy(out_cls.float(), label_trg)
            x_fake_id = self.G(x, c_org)
            out_src_id, out_cls_id = self.D(x_fake_id)
            g_loss_fake_id = -out_src_id.float().mean()
            g_loss_cls_id = F.cross_entropy(out_cls_id.float(), label_org)
            g_loss_rec = (x - self.G(x_fake, c_org).float()).abs().mean()
            g_loss_rec_id = (x - self.G(x_fake_id, c_org).float()).abs().mean()
            g_loss_id = (x - x_fake_id.float()).abs().mean()
        g_loss = (g_loss_fake + g_loss_fake_id + lambda_rec * (g_loss_rec + g_loss_rec_id)
                  + lambda_cls * (g_loss_cls + g_loss_cls_id) + lambda_id * g_loss_id)
        self.g_optimizer.zero_grad()
        g_loss.backward()
        self.g_optimizer.step()
