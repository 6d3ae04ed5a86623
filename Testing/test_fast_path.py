"""The training fast path: the resident training set, fused Adam, foreach EMA and device-side losses
train exactly what the loader path trains."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from monai.data import DataLoader, list_data_collate
from torch.utils._python_dispatch import TorchDispatchMode

from PilletGANLib.data import build_folder_manifest
from PilletGANLib.data.datasets import build_dataset
from PilletGANLib.engine import TrainingConfig
from PilletGANLib.engine.handlers import every
from PilletGANLib.engine.resident import ResidentBatches, ResidentTrainingSet
from PilletGANLib.engine.sampling import BalancedBatchSampler
from PilletGANLib.engine.trainer import PilletGANTrainer, make_ema
from PilletGANLib.losses import PilletGANLoss
from PilletGANLib.networks import PatchDiscriminator, PilletGenerator

SIZE, BATCH, ITERATIONS = 64, 4, 4


@pytest.fixture(scope="module")
def nih_items(shared_data):
    """A cached dataset of 16 real NIH images (8 per class) with their lung fields, and their labels."""
    records = build_folder_manifest(shared_data / "nih1000_64px")
    healthy = [r for r in records if not r.is_disease][:8]
    disease = [r for r in records if r.is_disease][:8]
    records = healthy + disease
    dataset = build_dataset(records, SIZE, 0.9, progress=False, lung_fields=True)
    return dataset, [1 if r.is_disease else 0 for r in records]


def _train(loader) -> PilletGANTrainer:
    config = TrainingConfig(image_size=SIZE, batch_size=BATCH, base_channels=8, num_res_blocks=1,
                            disc_base_channels=8, disc_layers=4)
    torch.manual_seed(0)
    generator = PilletGenerator(**config.network_kwargs())
    discriminator = PatchDiscriminator(**config.discriminator_kwargs())
    trainer = PilletGANTrainer(device="cpu", max_epochs=1, epoch_length=ITERATIONS, train_data_loader=loader,
                               generator=generator, discriminator=discriminator,
                               g_optimizer=config.optimizer(generator, 1e-3), d_optimizer=config.optimizer(discriminator, 1e-3),
                               loss=PilletGANLoss(), max_iterations=ITERATIONS, n_critic=2,
                               ema_generator=make_ema(generator), ema_decay=0.9, edit_region="lungs", seed=3)
    trainer.run()
    return trainer


def _states(trainer: PilletGANTrainer) -> dict[str, torch.Tensor]:
    networks = {"G": trainer.generator, "D": trainer.discriminator, "EMA": trainer.ema_generator}
    return {f"{k}.{name}": t for k, net in networks.items() for name, t in net.state_dict().items()}


def test_resident_batches_are_the_loader_batches(nih_items) -> None:
    dataset, labels = nih_items
    loader = DataLoader(dataset, batch_sampler=BalancedBatchSampler(labels, BATCH, seed=1), collate_fn=list_data_collate)
    resident = ResidentTrainingSet(dataset, "cpu", dtype=torch.float32)
    assert len(resident) == 16 and resident.lungs.dtype == torch.uint8
    half = ResidentTrainingSet(dataset, "cpu")
    assert half.images.dtype == torch.float16 and half.nbytes == 16 * SIZE * SIZE * 3 + 16 * 8
    for (expected, got, rounded), _ in zip(zip(loader, ResidentBatches(resident, BalancedBatchSampler(labels, BATCH, seed=1)),
                                               ResidentBatches(half, BalancedBatchSampler(labels, BATCH, seed=1)),
                                               strict=False), range(5), strict=False):
        assert torch.equal(got["image"], torch.as_tensor(expected["image"]).as_subclass(torch.Tensor))
        assert torch.equal(got["label"], torch.as_tensor(expected["label"]).long())
        assert torch.equal(got["lung"], torch.as_tensor(expected["lung"]).as_subclass(torch.Tensor))
        assert (rounded["image"] - got["image"]).abs().max() < 1e-3  # float16 storage: 3 significant digits


def test_fast_path_trains_exactly_what_the_loader_path_trains(nih_items) -> None:
    dataset, labels = nih_items
    slow = _train(DataLoader(dataset, batch_sampler=BalancedBatchSampler(labels, BATCH, seed=1),
                             collate_fn=list_data_collate))
    fast = _train(ResidentBatches(ResidentTrainingSet(dataset, "cpu", dtype=torch.float32),
                                  BalancedBatchSampler(labels, BATCH, seed=1)))
    slow_states, fast_states = _states(slow), _states(fast)
    for name, tensor in slow_states.items():
        assert torch.equal(tensor, fast_states[name]), name
    assert fast.state.iteration == ITERATIONS
    output = fast.state.output
    assert all(isinstance(output[k], torch.Tensor) and output[k].dim() == 0 for k in ("D/total", "G/total"))
    assert float(output["D/total"]) == float(slow.state.output["D/total"])


def test_lazy_gradient_penalty_runs_every_gp_interval_critic_steps_scaled(nih_items) -> None:
    """``gp_interval`` 3: the penalty on critic iterations 1, 4, 7 with weight 3 and no interpolates in between; the
    logged ``D/gradient_penalty`` keeps its last value, so every iteration logs the same terms."""
    dataset, labels = nih_items
    config = TrainingConfig(image_size=SIZE, batch_size=BATCH, base_channels=8, num_res_blocks=1,
                            disc_base_channels=8, disc_layers=4, gp_interval=3)
    generator = PilletGenerator(**config.network_kwargs())
    discriminator = PatchDiscriminator(**config.discriminator_kwargs())
    loss = PilletGANLoss()
    scales, outputs, critic_batches = [], [], []
    critic_loss = loss.critic_loss

    def recorded(critic, real, domain, fake, penalty_scale=1.0):
        scales.append(penalty_scale)
        return critic_loss(critic, real, domain, fake, penalty_scale)

    loss.critic_loss = recorded
    discriminator.register_forward_hook(lambda module, args, out: critic_batches.append(args[0].shape[0]))
    trainer = PilletGANTrainer(device="cpu", max_epochs=1, epoch_length=7, train_data_loader=ResidentBatches(
        ResidentTrainingSet(dataset, "cpu", dtype=torch.float32), BalancedBatchSampler(labels, BATCH, seed=1)),
        generator=generator, discriminator=discriminator, g_optimizer=config.optimizer(generator, 1e-3),
        d_optimizer=config.optimizer(discriminator, 1e-3), loss=loss, max_iterations=7, n_critic=7,
        gp_interval=config.gp_interval, seed=3)
    trainer.add_event_handler("ITERATION_COMPLETED", lambda engine: outputs.append(dict(engine.state.output)))
    trainer.run()
    assert scales == [3.0, 0.0, 0.0, 3.0, 0.0, 0.0, 3.0]
    assert critic_batches[:6] == [3 * BATCH, 2 * BATCH, 2 * BATCH, 3 * BATCH, 2 * BATCH, 2 * BATCH]
    assert all("D/gradient_penalty" in output for output in outputs)
    assert outputs[1]["D/gradient_penalty"] is outputs[0]["D/gradient_penalty"]
    assert outputs[3]["D/gradient_penalty"] is not outputs[0]["D/gradient_penalty"]
    with pytest.raises(ValueError, match="gp_interval must be >= 1"):
        PilletGANTrainer("cpu", 1, [], generator, discriminator, config.optimizer(generator, 1e-3),
                         config.optimizer(discriminator, 1e-3), gp_interval=0)


def test_foreach_ema_is_the_moving_average() -> None:
    generator = PilletGenerator(base_channels=8, num_res_blocks=1)
    discriminator = PatchDiscriminator(image_size=SIZE, base_channels=8, num_layers=4)
    ema = make_ema(generator)
    before = copy.deepcopy(ema.state_dict())
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(1.0)
    trainer = PilletGANTrainer("cpu", 1, [], generator, discriminator, torch.optim.Adam(generator.parameters()),
                               torch.optim.Adam(discriminator.parameters()), ema_generator=ema, ema_decay=0.75)
    trainer.update_ema()
    params = dict(generator.named_parameters())
    for name, value in ema.named_parameters():
        assert torch.allclose(value, 0.75 * before[name] + 0.25 * params[name], atol=1e-6), name


def test_bf16_where_the_device_emulates_it_is_warned(monkeypatch, caplog) -> None:
    """On a CPU without AVX512-BF16 or AMX, bf16 autocast trains many times slower than float32: the trainer says so."""
    from PilletGANLib.engine import trainer as trainer_module

    generator = PilletGenerator(base_channels=8, num_res_blocks=1)
    discriminator = PatchDiscriminator(image_size=SIZE, base_channels=8, num_layers=4)
    for native, bf16, warned in ((False, True, True), (True, True, False), (False, False, False)):
        monkeypatch.setattr(trainer_module, "native_bf16", lambda device, native=native: native)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=trainer_module.__name__):
            PilletGANTrainer("cpu", 1, [], generator, discriminator, torch.optim.Adam(generator.parameters()),
                             torch.optim.Adam(discriminator.parameters()), bf16=bf16)
        assert ("bf16 on cpu is emulated" in caplog.text) is warned, (native, bf16)


def test_every_fires_on_multiples() -> None:
    fires = every(3)
    assert [i for i in range(1, 10) if fires(None, i)] == [3, 6, 9]


class _HostReads(TorchDispatchMode):
    """Counts the operators that make a CUDA host wait for the device: a value read back (``item``, ``float``,
    ``bool``, which reach ``_local_scalar_dense``), an output whose size depends on the values (``nonzero``,
    ``masked_select``, indexing with a boolean mask). On the CPU they are free; this sees them all the same."""

    READS = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "is_nonzero", "equal",
                       "repeat_interleave", "masked_scatter"})

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        indices = args[1] if name in ("index", "index_put", "index_put_") and len(args) > 1 else ()
        if name in self.READS or any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ()):
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


def test_a_training_iteration_reads_nothing_back_from_the_device() -> None:
    """No host synchronization per iteration (issue 24): F.one_hot's range check read the domain indices back twice
    on every generator and attention call, 10 waits per forward pass of the default LTA generator and 10 to 20 per
    iteration on a GPU. Checked on the CPU by the operators a CUDA run would wait on, with attention, lung gates,
    augmentation, box and side guidance, the EMA and the lazy penalty."""
    probe = _HostReads()
    with probe:
        torch.nn.functional.one_hot(torch.tensor([0, 1]), 2)
    assert probe.seen == ["_local_scalar_dense", "_local_scalar_dense"]  # the probe sees a known read (min and max)

    generator = torch.Generator().manual_seed(0)
    items = []
    for index in range(8):
        lesion = torch.zeros(1, SIZE, SIZE)
        lesion[:, 20:40, 10:30] = float(index % 2)
        items.append({"image": torch.rand(1, SIZE, SIZE, generator=generator) * 2 - 1, "label": index % 2,
                      "lung": (torch.rand(1, SIZE, SIZE, generator=generator) > 0.3).float(), "lesion": lesion,
                      "has_truth": bool(index % 2)})
    config = TrainingConfig(image_size=SIZE, batch_size=BATCH, base_channels=8, num_res_blocks=2,
                            disc_base_channels=8, disc_layers=4, gp_interval=2, lambda_box=1.0, lambda_side=1.0)
    net = PilletGenerator(**config.network_kwargs())
    critic = PatchDiscriminator(**config.discriminator_kwargs())
    trainer = PilletGANTrainer(device="cpu", max_epochs=1, epoch_length=ITERATIONS, train_data_loader=ResidentBatches(
        ResidentTrainingSet(items, "cpu", truth=True), BalancedBatchSampler([i % 2 for i in range(8)], BATCH, seed=1)),
        generator=net, discriminator=critic, g_optimizer=config.optimizer(net, 1e-3),
        d_optimizer=config.optimizer(critic, 1e-3), loss=PilletGANLoss(**config.loss_kwargs()),
        max_iterations=ITERATIONS, n_critic=2, gp_interval=2, ema_generator=make_ema(net), edit_region="lungs", seed=3)
    iteration = trainer._process_function
    reads: list[list[str]] = []

    def probed(engine, batch):
        with _HostReads() as step:
            output = iteration(engine, batch)
        reads.append(step.seen)
        return output

    trainer._process_function = probed
    trainer.run()
    assert len(reads) == ITERATIONS and net.attention_at
    assert reads == [[]] * ITERATIONS
