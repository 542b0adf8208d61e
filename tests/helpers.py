"Test data shared by the test files (not part of the package)."
import math
import numpy as np, torch
from ajtfb_collab.bayes import BayesDot, Posterior


def low_rank_data(n_users:int=300, n_items:int=200, n_ratings:int=6000, n_factors:int=3, noise:float=0.5, seed:int=0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor]:
    "Ratings from known factors: `(user rows, item rows, ratings, the noise-free (n_users, n_items) table)` (rows from 1)."
    g = torch.Generator().manual_seed(seed)
    P, Q = torch.randn(n_users, n_factors, generator=g), torch.randn(n_items, n_factors, generator=g)
    b, c = 0.5 * torch.randn(n_users, 1, generator=g), 0.5 * torch.randn(1, n_items, generator=g)
    truth = 3 + b + c + P @ Q.T / math.sqrt(n_factors)  # (n_users, n_items)
    pairs = torch.randperm(n_users * n_items, generator=g)[:n_ratings]
    u, i = (pairs // n_items).numpy(), (pairs % n_items).numpy()
    r = truth[u, i] + noise * torch.randn(n_ratings, generator=g)
    return u + 1, i + 1, r.numpy(), torch.cat([torch.zeros(1, n_items + 1), torch.cat([torch.zeros(n_users, 1), truth], 1)])


def table_rmse(post:Posterior, truth:torch.Tensor) -> float:
    "RMSE of the posterior's mean prediction of every pair (rows and columns from 1) against `truth`."
    model = BayesDot.from_posterior(post)
    n_u, n_i = truth.shape
    u, i = torch.meshgrid(torch.arange(1, n_u), torch.arange(1, n_i), indexing='ij')
    with torch.no_grad(): pred = model(torch.stack([u.reshape(-1), i.reshape(-1)], 1))
    return float(((pred - truth[1:, 1:].reshape(-1)) ** 2).mean().sqrt())