"Inference and save/load on a small model trained in seconds on synthetic ratings."
import numpy as np, pandas as pd, pytest, torch
from fastai.collab import collab_learner
from ajtfb_collab.core import seed_all
from ajtfb_collab.data import collab_dls
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.models import DotProductBias, ParamDotProductBias, DotProduct
from ajtfb_collab.chapter import CollabNN
from ajtfb_collab.inference import (predict_ratings, recommend, save_model, load_model, FORMAT,
                                    CollabModel)
from ajtfb_collab.interpret import most_similar, item_biases
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from fastai.tabular.model import get_emb_sz


@pytest.fixture(scope='module')
def data():
    r = synthetic_ratings(n_users=60, n_items=30, n_ratings=1500, seed=1)
    return r, collab_dls(r, bs=64)


def fitted(dls, kind):
    seed_all(dls, 0)
    n_u, n_i = (len(v) for v in dls.classes.values())
    learn = {'dot': lambda: collab_learner(dls, n_factors=8, y_range=(0, 5.5)),
             'nn': lambda: collab_learner(dls, use_nn=True, y_range=(0, 5.5), layers=[16, 8]),
             'DotProductBias': lambda: Learner(dls, DotProductBias(n_u, n_i, 8), loss_func=MSELossFlat()),
             'ParamDotProductBias': lambda: Learner(dls, ParamDotProductBias(n_u, n_i, 8), loss_func=MSELossFlat()),
             'DotProduct': lambda: Learner(dls, DotProduct(n_u, n_i, 8, y_range=(0, 5.5)), loss_func=MSELossFlat()),
             'CollabNN': lambda: Learner(dls, CollabNN(*get_emb_sz(dls)), loss_func=MSELossFlat())}[kind]()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-2)
    return learn


KINDS = ['dot', 'nn', 'DotProductBias', 'ParamDotProductBias', 'DotProduct', 'CollabNN']


@pytest.mark.parametrize('kind', KINDS)
def test_round_trip_identical_predictions(data, kind, tmp_path):
    r, dls = data
    learn = fitted(dls, kind)
    loaded = load_model(save_model(learn, tmp_path/'m.pth'))
    assert isinstance(loaded, CollabModel) and type(loaded.model) is type(learn.model)
    np.testing.assert_allclose(predict_ratings(loaded, r), predict_ratings(learn, r), atol=1e-5)
    pd.testing.assert_frame_equal(recommend(loaded, 1, n=5), recommend(learn, 1, n=5))
    pd.testing.assert_frame_equal(most_similar(loaded, 'Movie 1'), most_similar(learn, 'Movie 1'))
    new = pd.DataFrame({'user': [10_000, 1], 'title': ['Movie 1', 'Movie 10000']})
    np.testing.assert_allclose(predict_ratings(loaded, new, on_unknown='fallback'),
                               predict_ratings(learn, new, on_unknown='fallback'), atol=1e-5)


def test_predictions_are_the_learners(data):
    r, dls = data
    learn = fitted(dls, 'dot')
    preds, _ = learn.get_preds()
    valid = dls.valid_ds.items
    users, items = (list(v) for v in dls.classes.values())
    df = pd.DataFrame({'user': [users[u] for u in valid.user], 'title': [items[i] for i in valid.title]})
    np.testing.assert_allclose(predict_ratings(learn, df), preds.numpy().ravel(), atol=1e-5)


def test_unknown_users_and_items_raise_with_names(data):
    r, dls = data
    learn = fitted(dls, 'dot')
    df = pd.DataFrame({'user': [1] + list(range(5000, 5008)), 'title': ['Movie 1'] * 8 + ['Nope']})
    with pytest.raises(KeyError, match=r"8 unknown user\(s\): 5000, 5001, 5002, 5003, 5004 and 3 more; "
                                       r"1 unknown item\(s\): 'Nope'"):
        predict_ratings(learn, df)
    with pytest.raises(KeyError, match='unknown user 5000'): recommend(learn, 5000)


def test_fallback_orders_new_user_by_item_bias(data):
    r, dls = data
    learn = fitted(dls, 'dot')
    b = item_biases(learn).sort_values()
    p = predict_ratings(learn, pd.DataFrame({'user': [9999, 9999], 'title': [b.index[0], b.index[-1]]}),
                        on_unknown='fallback')
    assert p[1] > p[0]
    both = predict_ratings(learn, pd.DataFrame({'user': [9999], 'title': ['Nope']}), on_unknown='fallback')
    assert both[0] == pytest.approx(dls.train_ds.ys.values.mean(), abs=1e-5)


def test_recommend_leaves_out_seen_items(data):
    r, dls = data
    learn = fitted(dls, 'dot')
    recs = recommend(learn, 3, n=100, seen=r)
    assert not recs.title.isin(r[r.user == 3].title).any()
    assert len(recs) == len(dls.classes['title']) - 1 - r[r.user == 3].title.isin(dls.classes['title']).sum()
    assert recs.prediction.is_monotonic_decreasing


def test_truncated_foreign_and_mixed_files_refused(data, tmp_path):
    r, dls = data
    fn = save_model(fitted(dls, 'dot'), tmp_path/'m.pth')
    (tmp_path/'t.pth').write_bytes(fn.read_bytes()[:len(fn.read_bytes()) // 2])
    with pytest.raises(ValueError, match=f"{tmp_path/'t.pth'} is not a readable model file"): load_model(tmp_path/'t.pth')
    (tmp_path/'j.pth').write_text('{"format": "json"}')
    with pytest.raises(ValueError, match='is not a readable model file'): load_model(tmp_path/'j.pth')
    torch.save({'format': 'other/1'}, tmp_path/'o.pth')
    with pytest.raises(ValueError, match='is not an ajtfb_collab model file'): load_model(tmp_path/'o.pth')
    nn_file = torch.load(save_model(fitted(dls, 'nn'), tmp_path/'nn.pth'), weights_only=True)
    nn_file['spec'] = torch.load(fn, weights_only=True)['spec']  # another model kind's description
    torch.save(nn_file, tmp_path/'mixed.pth')
    with pytest.raises(ValueError, match='the weights do not fit the model it describes'): load_model(tmp_path/'mixed.pth')
    with pytest.raises(FileNotFoundError, match='no model file at'): load_model(tmp_path/'none.pth')


def test_load_never_unpickles_code(tmp_path):
    marker = tmp_path/'ran'
    class Evil:
        def __reduce__(self): return (open, (str(marker), 'w'))
    torch.save({'format': FORMAT, 'evil': Evil()}, tmp_path/'e.pth')
    with pytest.raises(ValueError, match='is not a readable model file'): load_model(tmp_path/'e.pth')
    assert not marker.exists()


def test_failed_save_keeps_old_file(data, tmp_path, monkeypatch):
    r, dls = data
    learn = fitted(dls, 'dot')
    fn = save_model(learn, tmp_path/'m.pth')
    before = fn.read_bytes()
    def crash(obj, f):  # a crash half-way through writing
        f.write(b'partial'); raise OSError('disk full')
    monkeypatch.setattr(torch, 'save', crash)
    with pytest.raises(OSError, match='disk full'): save_model(learn, fn)
    assert fn.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ['m.pth']  # no temporary file left behind
