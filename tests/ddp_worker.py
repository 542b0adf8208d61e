"Started by tests/test_distrib.py under torchrun: trains the fast and rank recipes data-parallel on small synthetic ratings; each process writes what it saw and what it ended with."
import json, sys
from pathlib import Path
from fastai.callback.core import Callback
from ajtfb_collab.distrib import leave_together
from fastai.torch_core import rank_distrib
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.distrib import ddp_train, weights_checksum
from ajtfb_collab.fast import FAST
from ajtfb_collab.rank import RANK

RECIPES = {'fast': FAST.but(epochs=2),  # small tables: dense, reduced by DDP
           'fast_sparse': FAST.but(epochs=2, sparse=True),  # sparse tables (`SparseAdam`), gathered by `gather_sparse_grads`
           'rank': RANK.but(epochs=2, n_factors=16),  # the full softmax: dense tables
           'rank_sampled': RANK.but(epochs=2, n_factors=16, n_neg=20)}  # sparse tables, gathered; kept gradients (`KeptGradAdamW`)

def ratings(): return synthetic_ratings(n_users=150, n_items=60, n_ratings=5000, n_factors=3, seed=5)  # distinct (user, movie) pairs

class Seen(Callback):
    "Each epoch's training rows, as `user * 1000 + movie` codes: what this process trained on."
    order = 99
    def before_fit(self): self.epochs = []
    def before_epoch(self): self.epochs.append([])
    def before_batch(self):
        if self.training: self.epochs[-1] += (self.xb[0][:, 0] * 1000 + self.xb[0][:, 1]).tolist()

if __name__ == '__main__':
    out, res = Path(sys.argv[1]), {}
    for name, recipe in RECIPES.items():
        seen = Seen()
        learn = ddp_train(recipe, ratings(), item_name='movie', seed=0, timeout=30, cbs=[seen])
        res[name] = dict(checksum=weights_checksum(learn.model), valid=float(learn.recorder.values[-1][1]), seen=seen.epochs,
                         bs=learn.dls.train.bs, n_train=learn.dls.train.n,
                         sparse=learn.model.u_weight.sparse)
    (out/f'rank{rank_distrib()}.json').write_text(json.dumps(res))
    leave_together()  # every process leaves the group, together
