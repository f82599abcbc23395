"""DAMIC on the pinned synthetic data: readings of the paper we do not use by default.

1. The clustering network of sec. 3.5.1, d-512-512-2: a 2-unit representation
   h(x) (the paper's Fig. 2e plots it) before the linear softmax layer, with
   ReLU on it as on every hidden unit of the paper (``gate-2-relu``) or linear
   (``gate-2-linear``). The default network is d-512-512 then the softmax.
2. Eq. (3) with another noise variance. ``d = ||x - f_i(x)||^2 / 2`` is the
   negative log-likelihood of an isotropic Gaussian of variance 1; the
   reconstruction errors here are 0.002-0.016, so ``exp(-d)`` is nearly 1
   for every expert and eq. (5)'s posterior is nearly the clustering
   network's own output. ``scale-10`` uses ``10 d`` (variance 0.1);
   ``variance-mle`` divides ``d`` by a shared variance estimated on each
   batch as the mean squared error per feature, weighted by eq. (5)'s
   posterior at variance 1 (nearly the clustering network's output), and
   held constant in the gradient: close to the maximum-likelihood variance
   when the experts' errors on a point are alike, as they are here.
3. The paper's 2-unit bottleneck for the single autoencoder on this data
   (its DAE is 100-50-10-2), here d-1024-256-2, with the Gaussian-mixture
   start instead of k-means (``gmm-2d``: ``init="gmm", embedding_dim=2``):
   not a reading of the paper's joint training but of its start, the best
   start we found on this layout apart from the true labels.
4. Experts narrower than the data. Each expert's K-unit bottleneck (4 here)
   exceeds the 2-D latent's dimension, so every expert can reconstruct every
   cluster and eq. (3) cannot tell the partitions apart (see DAMIC's Notes).
   ``expert-1`` gives each expert a 1-unit bottleneck, linear (a ReLU on a
   single unit would send half of a cluster to one reconstruction), so that
   an expert can follow one elongated cluster along its main axis but not
   the whole 2-D sheet; ``gmm-2d-expert-1`` does so from the ``gmm-2d``
   start. Not the paper's architecture.

Every setting a variant does not name is DAMIC's default (own pretraining, k-means start). One
JSON line per fit goes to ``--out``; ``--summary`` prints the table.

Examples
--------
::

    python benchmarks/damic_variants.py 0 --variants gate-2-linear variance-mle --out damic_variants.jsonl
    python benchmarks/damic_variants.py --summary damic_variants.jsonl
"""

import time

import torch
from sklearn.metrics import normalized_mutual_info_score
from torch import nn

from _records import append_record, damic_fit_record, run_experiment, grouped_records, markdown_table, mean_of
from skdeepcluster import DAMIC
from skdeepcluster._core.autoencoder import glorot_init_, mlp
from skdeepcluster._damic import StackedMLP, mixture_nll, posterior, single_row_safe
from skdeepcluster.datasets import make_dcn_synthetic


class _TwoUnitGateDAMIC(DAMIC):
    """The clustering network d-512-512-2 -> softmax of sec. 3.5.1."""

    linear_representation = False

    def _build_module(self, n_features, autoencoder, seed):
        module = super()._build_module(n_features, autoencoder, seed)
        gate = glorot_init_(mlp((n_features, *self._gate_widths(), 2, self.n_clusters), "relu", batch_norm=True))
        if self.linear_representation:
            gate[-2] = nn.Identity()  # the ReLU after the 2-unit layer's batch norm
        module.gate = gate
        return module

    @property
    def _n_features_out(self):
        return 2


class _NoiseVarianceDAMIC(DAMIC):
    """Eq. (3) with ``d / variance``; ``variance=None`` re-estimates it per batch."""

    variance = None

    def _batch_loss(self, x, index):
        with single_row_safe(self.module_, x.shape[0]):
            log_gate, distances = self.module_(x)
        with torch.no_grad():
            weighted = (posterior(log_gate, distances) * distances).sum(dim=1).mean()
            variance = self.variance if self.variance is not None else (2 * weighted / x.shape[1]).clamp_min(1e-8)
        loss = mixture_nll(log_gate, distances / variance).mean()
        return {"loss": loss, "reconstruction": weighted}


class _LinearBottleneckExperts(nn.Module):
    """Stacked autoencoders as a stacked encoder, whose last layer (the
    bottleneck) has no batch norm and no ReLU, and a stacked decoder."""

    def __init__(self, n_models, encoder_sizes, output_activation):
        super().__init__()
        self.encoder = StackedMLP(n_models, encoder_sizes, "relu", None, batch_norm=True)
        self.decoder = StackedMLP(n_models, encoder_sizes[::-1], "relu", output_activation, batch_norm=True)

    def forward(self, x):
        return self.decoder(self.encoder(x))


class _NarrowExpertDAMIC(DAMIC):
    """Experts ``d-1024-256-b-256-1024-d`` with a linear ``b``-unit bottleneck."""

    expert_bottleneck = 1

    def _build_module(self, n_features, autoencoder, seed):
        module = super()._build_module(n_features, autoencoder, seed)
        encoder_sizes = (n_features, *self._expert_widths(), self.expert_bottleneck)
        module.experts = _LinearBottleneckExperts(self.n_clusters, encoder_sizes, self.output_activation)
        return module


#: name -> (class, class attributes, constructor parameters)
VARIANTS = {
    "gate-2-relu": (_TwoUnitGateDAMIC, {}, {}),
    "gate-2-linear": (_TwoUnitGateDAMIC, {"linear_representation": True}, {}),
    "scale-10": (_NoiseVarianceDAMIC, {"variance": 0.1}, {}),
    "variance-mle": (_NoiseVarianceDAMIC, {"variance": None}, {}),
    "gmm-2d": (DAMIC, {}, {"init": "gmm", "embedding_dim": 2}),
    "expert-1": (_NarrowExpertDAMIC, {}, {}),
    "gmm-2d-expert-1": (_NarrowExpertDAMIC, {}, {"init": "gmm", "embedding_dim": 2}),
}


def run(seed, variants, device, out):
    X, y, _ = make_dcn_synthetic(random_state=0)
    for name in variants:
        base, attributes, params = VARIANTS[name]
        est = type(base.__name__, (base,), attributes)(4, device=device, random_state=seed, **params)
        began = time.perf_counter()
        est.fit(X)
        errors = est.reconstruction_errors(X)
        record = damic_fit_record(est, X, y, seed, began)
        record.update(
            variant=name,
            nmi_reconstruction_rule=normalized_mutual_info_score(y, errors.argmin(axis=1)),
            mean_min_d=float(errors.min(axis=1).mean()),
        )
        append_record(out, record)


def _start_ari(records):
    # the first runs did not record it
    if all("start_ari" in r for r in records):
        return f"{mean_of(records, 'start_ari'):.3f}"
    return "-"


def summary(paths):
    groups = grouped_records(paths, key=lambda r: r["variant"])
    header = ("variant", "start NMI / ARI", "final NMI / ARI", "final NMI per seed", "epochs", "seeds")
    rows = [
        (
            name, f"{mean_of(rs, 'start_nmi'):.3f} / {_start_ari(rs)}", f"{mean_of(rs, 'nmi'):.3f} / {mean_of(rs, 'ari'):.3f}",
            " ".join(f"{r['seed']}: {r['nmi']:.3f}" for r in rs), f"{mean_of(rs, 'n_iter'):.1f}", len(rs),
        )
        for name, rs in sorted(groups.items())
    ]
    return markdown_table(header, rows)


def main(argv=None):
    variants = {"nargs": "+", "choices": sorted(VARIANTS), "default": sorted(VARIANTS)}
    run_experiment(
        __doc__, "damic_variants.jsonl", lambda args: run(args.seed, args.variants, args.device, args.out), summary, argv,
        options={"--variants": variants},
    )


if __name__ == "__main__":
    main()
