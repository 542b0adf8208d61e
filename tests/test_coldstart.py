"Cold-start building blocks on synthetic ratings (no real dataset needed)."
import numpy as np, pandas as pd, pytest, torch
from fastai.collab import EmbeddingDotBias, collab_learner
from ajtfb_collab.core import seed_all
from ajtfb_collab.data import collab_dls
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.models import DotProductBias, ParamDotProductBias
from ajtfb_collab.chapter import CollabNN
from ajtfb_collab.fast import FastDotBias
from ajtfb_collab.coldstart import (user_parts, hold_out_users, sign_up_split, fold_in_answers, fold_in_user, score_users,
                                    recommend_new_user)


@pytest.mark.parametrize('model', [EmbeddingDotBias(4, 5, 6), DotProductBias(5, 6, 4), ParamDotProductBias(5, 6, 4)])
def test_user_parts_shapes(model):
    f, b = user_parts(model)
    assert f.shape == (5, 4) and b.shape == (5,)


def test_user_parts_of_every_shape():
    f, b = user_parts(CollabNN((5, 3), (6, 2)))  # a neural model: its user embedding, no biases
    assert f.shape == (5, 3) and b is None
    f, b = user_parts(FastDotBias(5, 6, 4, n_members=3))  # members side by side, one bias column each
    assert f.shape == (5, 12) and b.shape == (5, 3)
    f, b = user_parts(FastDotBias(5, 6, 4))
    assert f.shape == (5, 4) and b.shape == (5,)


def test_hold_out_and_sign_up_split():
    r = synthetic_ratings(n_users=100, n_items=40, n_ratings=3000, seed=5)
    known, held = hold_out_users(r, frac=0.1, seed=1)
    assert held.user.nunique() == 10 and not set(known.user) & set(held.user) and len(known) + len(held) == len(r)
    answers, rest = sign_up_split(held, n_answers=5)
    assert (answers.groupby('user').size() <= 5).all() and len(answers) + len(rest) == len(held)


@pytest.fixture(scope='module')
def trained():
    r = synthetic_ratings(n_users=120, n_items=40, n_ratings=3500, n_factors=2, noise=0.2, seed=7)
    known, held = hold_out_users(r, frac=0.1, seed=2)
    dls = collab_dls(known, bs=64)
    seed_all(dls, 0)
    learn = collab_learner(dls, n_factors=8, y_range=(0, 5.5))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(8, 1e-2, wd=0.1)
    return learn, held


def test_fold_in_fits_answers_better_than_prior(trained):
    learn, held = trained
    answers, _ = sign_up_split(held, n_answers=15)
    users = list(pd.unique(answers.user))
    rows = answers.user.map({u: i for i, u in enumerate(users)}).to_numpy()
    f, b = user_parts(learn.model)
    prior = score_users(learn, f[1:].mean(0).expand(len(users), -1), b[1:].mean().expand(len(users)), rows, answers.title)
    _, v, bias = fold_in_answers(learn, answers, users=users)
    fitted = score_users(learn, v, bias, rows, answers.title)
    rmse = lambda p: np.sqrt(np.mean((p - answers.rating.values)**2))
    assert rmse(fitted) < rmse(prior) - 0.05


def test_fold_in_with_no_steps_is_the_prior(trained):
    learn, held = trained
    one = held[held.user == held.user.iloc[0]]
    v, b = fold_in_user(learn, one, steps=0)
    f, ub = user_parts(learn.model)
    torch.testing.assert_close(v, f[1:].mean(0)); torch.testing.assert_close(b, ub[1:].mean())


def test_recommend_new_user_leaves_out_answers(trained):
    learn, held = trained
    mine = held[held.user == held.user.iloc[0]][['title', 'rating']].head(5)
    recs = recommend_new_user(learn, mine, n=8)
    assert len(recs) == 8 and not recs.title.isin(mine.title).any() and recs.prediction.is_monotonic_decreasing
    cold = recommend_new_user(learn, n=3)  # nothing known: the items with the highest bias
    top = learn.model.i_bias.weight[1:, 0].argsort(descending=True)[:3] + 1
    assert cold.title.tolist() == [learn.dls.classes['title'][i] for i in top]


def test_recommend_new_user_meta_without_model_is_an_error(trained):
    learn, held = trained
    with pytest.raises(ValueError, match='meta needs meta_model'):
        recommend_new_user(learn, meta=pd.DataFrame({'user': [1], 'age': [30], 'gender': ['F'], 'occupation': ['other'], 'zip': ['12345']}))
