"""One worker of the two-process tests (tests/test_distributed.py): trains stage 2's
ranking model on the tiny synthetic data and writes its final weights.

    python tests/cluster_worker.py WORKERS INDEX DATA_DIR OUT.npz   (WORKERS "-": alone)
"""
import sys

from lib import distributed as D

workers, index, data_dir, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if workers != "-":
    D.Cluster.start(workers, index, timeout=60)

import numpy as np  # noqa: E402

from lib import data, evaluation, stages  # noqa: E402
from lib import models as M  # noqa: E402
from lib.ids import IdMap  # noqa: E402

ds = data.load_dataset("synthetic-tiny", data_dir, generate=False)
ids = IdMap.from_dataset(ds)
s1 = stages.run_stage1(ds, ids, epochs=3, progress=False)
train = evaluation.interactions(ds.ratings, ids)
M.seed_everything(7)
with D.scope():
    model = M.build_ranking_model(ids.n_users, ids.n_movies, movie_init=s1.movie_vectors,
                                  dropout=float(sys.argv[5]), seed=7)
loss = sys.argv[6]
history = M.train_ranking_model(model, train, {}, epochs=6, batch_users=48, seed=7,
                                loss=loss, negatives=16, progress=False)
np.savez(out, *model.get_weights(), loss=history["loss"].to_numpy())
