"""Columns as CSV text, byte for byte what ``DataFrame.to_csv`` writes, faster.

A campaign case writes about 2,000 rows of part files. pandas' writer spent a third of a
worker's time on them (it formats every float through its own block machinery before
the csv module writes the rows), and the csv module alone still spent much of its time
copying each field character by character. Here each column becomes a list of field
texts (a float64 column's shortest repr, made once per distinct value; integers as
``str``; text as itself, quoted as the csv module quotes it; NaN and None as empty
fields) and the rows are joined with ``,``, with pandas' dialect and ``\\n`` line ends.
Text the csv module would treat specially (line breaks, non-text objects in a text
column) goes through the csv module; columns of any other kind (float32, complex, dates,
categoricals) would be written differently, so a table holding one is handed to pandas.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["columns_csv", "frame_csv"]


def frame_csv(frame: pd.DataFrame, columns: Sequence[str], header: bool) -> str:
    """``frame[columns]`` as CSV text with ``\\n`` line ends and no index: the text of
    ``frame.to_csv(columns=columns, index=False, header=header, lineterminator="\\n")``."""
    arrays = {name: _series_array(frame[name]) for name in columns}
    if any(a is None for a in arrays.values()):
        return _pandas_csv(frame, columns, header)
    return columns_csv(arrays, columns, header)  # type: ignore[arg-type]


def columns_csv(columns: Mapping[str, np.ndarray], names: Sequence[str], header: bool) -> str:
    """Numpy arrays ``columns[name]`` (one length) as CSV text: the text
    :func:`frame_csv` writes for ``pd.DataFrame(columns)``, without building the frame."""
    arrays = [np.asarray(columns[name]) for name in names]
    if len(names) > 1:  # the csv module quotes a lone empty field; several fields: as is
        texts = [_field_texts(a) for a in arrays]
        if all(t is not None for t in texts) and all(_plain(n) for n in names):
            head = ",".join(names) + "\n" if header else ""
            if not len(arrays[0]):
                return head
            return head + "\n".join(map(",".join, zip(*texts, strict=True))) + "\n"  # type: ignore[arg-type]
    values = [_array_values(a) for a in arrays]
    if any(v is None for v in values):
        return _pandas_csv(pd.DataFrame(dict(zip(names, arrays, strict=True))), names, header)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(list(names))
    writer.writerows(zip(*values, strict=True))
    return buf.getvalue()


def _pandas_csv(frame: pd.DataFrame, columns: Sequence[str], header: bool) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, columns=list(columns), index=False, header=header, lineterminator="\n")
    return buf.getvalue()


def _series_array(column: pd.Series) -> np.ndarray | None:
    """The column as a numpy array this module writes as pandas would (float64, integers,
    booleans, text as an object array); None for any other kind."""
    dtype = column.dtype
    if dtype == np.float64 or (dtype.kind in "iub" and isinstance(dtype, np.dtype)):
        return column.to_numpy()
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return column.to_numpy(dtype=object)
    return None


_QUOTED = (",", '"')
"""Characters for which the csv module (pandas' dialect) puts a field in quotes."""
_SPECIAL = ("\n", "\r")
"""Characters whose handling is left to the csv module itself."""


def _plain(text: str) -> bool:
    return not any(c in text for c in _QUOTED + _SPECIAL)


def _field_texts(array: np.ndarray) -> list[str] | None:
    """The column's fields as the csv module writes them; None where only the csv
    module knows (a line break, an object that is not text, a kind of column that
    :func:`_array_values` does not write)."""
    if array.dtype == np.float64:
        return _float_texts(array)
    kind = array.dtype.kind
    if kind == "b":
        return ["True" if v else "False" for v in array.tolist()]
    if kind in "iu":
        return list(map(str, array.tolist()))
    if kind not in "OU":
        return None
    values = array.tolist()
    missing = pd.isna(array)
    if missing.any():
        values = ["" if m else v for v, m in zip(values, missing.tolist(), strict=True)]
    try:
        joined = "\x00".join(values)  # a TypeError for anything that is not text
    except TypeError:
        return None
    if any(c in joined for c in _SPECIAL):
        return None
    if any(c in joined for c in _QUOTED):  # each distinct text quoted once (points repeat)
        quoted = {v: v if _plain(v) else '"' + v.replace('"', '""') + '"' for v in set(values)}
        return [quoted[v] for v in values]
    return values


def _float_texts(array: np.ndarray) -> list[str]:
    """Each float's shortest repr ("" for NaN). A column of few distinct values (a
    finite-difference table repeats each point's truth for every scheme and step) makes
    each distinct value's repr once; values are told apart by their bits, so that -0.0
    stays "-0.0"."""
    bits, first, inverse = np.unique(array.view(np.int64), return_index=True, return_inverse=True)
    if 4 * len(bits) <= len(array):
        distinct = np.array(["" if v != v else repr(v) for v in array[first].tolist()], dtype=object)
        return distinct[inverse].tolist()  # type: ignore[no-any-return]
    texts = list(map(repr, array.tolist()))
    nan = np.flatnonzero(np.isnan(array))
    for i in nan.tolist():
        texts[i] = ""
    return texts


def _array_values(array: np.ndarray) -> list[Any] | None:
    """The column as Python values the csv module writes as pandas would (float64,
    integers, booleans and text; None, NaN, pd.NA and NaT as empty fields); None for a
    column kind this module does not write itself."""
    kind = array.dtype.kind
    if array.dtype == np.float64:
        out = array.tolist()
        if np.isnan(array).any():
            return [None if v != v else v for v in out]
        return out
    if kind in "iub":
        return array.tolist()
    if kind in "OU":
        values = array.tolist()
        missing = pd.isna(array)
        if missing.any():
            return [None if m else v for v, m in zip(values, missing.tolist(), strict=True)]
        return values
    return None
