"""How long `interp.classify` takes on a p = 113, d_model = 128 model (target: <= 1 s of compute),
next to one full forward pass over all p^2 inputs measured in the same run.

    python benchmarks/bench_classify.py            # torch's default thread count
    OMP_NUM_THREADS=1 python benchmarks/bench_classify.py

The model is the Nanda preset's shape with an embedding planted on 6 Fourier frequencies, so key
frequency detection finds keys and the template fits do their full work (a random embedding has
none and would make the timing look better than it is).
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from interp.classifier import classify_model
from interp.config import ModelConfig
from interp.data import all_tokens
from interp.model import Transformer

FREQS = (14, 35, 41, 42, 52, 7)  # the paper's mainline keys plus one


def planted_model(seed: int = 0) -> Transformer:
    model = Transformer(ModelConfig(), seed=seed)  # p 113, d_model 128, [a, b, =]
    p, d = model.cfg.p, model.cfg.d_model
    t = torch.arange(p, dtype=torch.float32)
    waves = torch.stack([f(2 * math.pi * k * t / p) for k in FREQS for f in (torch.cos, torch.sin)], 1)  # [p, 12]
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(d, waves.shape[1], generator=g)).Q  # [d, 12] orthonormal
    with torch.no_grad():
        model.embed.W_E[:p] = waves @ Q.T + 0.05 * torch.randn(p, d, generator=g)
    return model.eval()


def timings(fn, repeats: int) -> tuple[float, float]:
    """(min, median) seconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    model = planted_model()
    tokens = all_tokens(model.cfg)

    @torch.no_grad()
    def forward():  # every position, as model(tokens) runs it
        return model(tokens)

    forward()  # warm-up
    fwd_min, fwd_med = timings(forward, 5)
    result = classify_model(model)  # warm-up (imports, caches)
    cls_min, cls_med = timings(lambda: classify_model(model), 5)
    print(f"threads {torch.get_num_threads()}; p={model.cfg.p}, d_model={model.cfg.d_model}, "
          f"key frequencies {result.key_frequencies}")
    print(f"full forward over {tokens.shape[0]} inputs: min {fwd_min * 1e3:.1f} ms, median {fwd_med * 1e3:.1f} ms")
    print(f"classify:                         min {cls_min * 1e3:.1f} ms, median {cls_med * 1e3:.1f} ms "
          f"({cls_med / fwd_med:.1f}x the forward; target <= 1000 ms)")


if __name__ == "__main__":
    main()
