"""Hyperparameter search: joblib workers and dask share one pretraining."""

import glob
import os

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import MinMaxScaler

from conftest import CLUSTERERS, fast
from skdeepcluster import DeepKMeans
from skdeepcluster.metrics import accuracy_scorer
from skdeepcluster.model_selection import FitAllScoreLabelled, validation_labels


def _pretrainings(cache):
    return glob.glob(os.path.join(str(cache), "**", "_train_autoencoder", "*", "output.pkl"), recursive=True)


def _search(cls, cache, n_jobs, blobs):
    X, y = blobs
    X = MinMaxScaler().fit_transform(X)
    y_search, _, test = validation_labels(y, 0.1, random_state=0)
    search = GridSearchCV(
        fast(cls, n_clusters=3, memory=str(cache)),
        {"max_epochs": [1, 3]},
        cv=FitAllScoreLabelled(),
        scoring=accuracy_scorer,
        n_jobs=n_jobs,
    )
    return search.fit(X, y_search), y, test


@pytest.mark.parametrize("cls", CLUSTERERS, ids=lambda c: c.__name__)
def test_grid_search_two_jobs_pretrains_once(cls, blobs, tmp_path):
    search, y, test = _search(cls, tmp_path, 2, blobs)
    assert len(_pretrainings(tmp_path)) == 1
    assert search.best_score_ > 0.8
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_dask_backend_on_a_local_cluster(blobs, tmp_path):
    distributed = pytest.importorskip("distributed")
    from joblib import parallel_backend

    cls = DeepKMeans
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            with parallel_backend("dask"):
                search, y, test = _search(cls, tmp_path, -1, blobs)
    assert len(_pretrainings(tmp_path)) == 1
    assert search.best_score_ > 0.8
