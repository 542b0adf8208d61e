"MovieLens' side information as feature matrices: users, movies, who rated what, the day."
import numpy as np, pandas as pd
import scipy.sparse as sps
from ajtfb_collab.side_info import user_info, item_info, implicit_feedback, day_codes


def test_implicit_rows_have_unit_norm():
    F = implicit_feedback(np.array([0, 0, 0, 1]), np.array([0, 1, 2, 2]), 3, 3)
    assert sps.issparse(F) and F.nnz == 4
    assert np.allclose(np.sqrt(F.multiply(F).sum(1)).A1, [1., 1., 0.])


def test_user_and_item_tables_one_hot(tiny_ml100k):
    F, names = user_info([None, 1, 2, 3], tiny_ml100k)
    assert F[0].sum() == 0 and F[1:].sum(1).tolist() == [4., 4., 4.]  # `#na#`: nothing; each user: age, gender, occupation, zip
    assert len(names) == F.shape[1]
    F, names = item_info(['#na#', 'Toy Story (1995)', 'Casablanca (1942)'], path=tiny_ml100k)
    assert F[1, names.index('Animation')] == 1 and F[2, names.index('Romance')] == 1 and F[0].sum() == 0


def test_day_codes_know_only_their_days():
    codes, days = day_codes(pd.Series([0, 3600, 86400 * 2]))  # two ratings on the first day, one two days later
    assert codes.tolist() == [0, 0, 1] and day_codes(pd.Series([86400]), days)[0].tolist() == [-1]
