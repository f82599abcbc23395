"""
Deep k-Means on the digits: embedding and clusters
==================================================

Fits :class:`skdeepcluster.DeepKMeans` on scikit-learn's 8x8 digits and
draws the learned 10-d embedding projected to 2-d by PCA, coloured by
cluster, with the representatives. About a minute on 2 CPU cores.
"""

import matplotlib.pyplot as plt
from sklearn.decomposition import PCA

from skdeepcluster import DeepKMeans
from skdeepcluster.datasets import load_digits_scaled
from skdeepcluster.metrics import clustering_accuracy

X, y = load_digits_scaled()
dkm = DeepKMeans(n_clusters=10, pretrain_epochs=50, max_epochs=30, random_state=0, device="cpu")
labels = dkm.fit_predict(X)

pca = PCA(2).fit(dkm.transform(X))
Z2 = pca.transform(dkm.transform(X))
centers2 = pca.transform(dkm.cluster_centers_)

fig, ax = plt.subplots(figsize=(6, 5))
ax.scatter(Z2[:, 0], Z2[:, 1], c=labels, s=6, cmap="tab10")
ax.scatter(centers2[:, 0], centers2[:, 1], c="black", marker="x", s=80)
ax.set_title(f"DeepKMeans on digits, accuracy {clustering_accuracy(y, labels):.3f}")
fig.tight_layout()
plt.show()
