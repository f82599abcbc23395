"""Distances shared by the centroid-based methods."""


def squared_distances(Z, centers):
    """``||z_i - c_k||^2`` for every row of ``Z`` and every centre, shape (n, K).

    Computed from the differences rather than ``|z|^2 - 2 z.c + |c|^2``,
    which can go negative by rounding and breaks the gradient near a centre.
    """
    return (Z.unsqueeze(1) - centers.unsqueeze(0)).pow(2).sum(dim=2)
