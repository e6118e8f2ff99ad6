"""The run record (tools/run_record.py): models by origin, cold and warm times, budgets, glue numbers."""

from __future__ import annotations

import copy
import json

import nbformat
import pytest

from tools import run_record
from tools.run_record import ModelUse, Record


def _event(event, name, file, train_seconds=None, waited=0.0):
    return {"name": name, "file": file, "event": event, "waited_seconds": waited, "train_seconds": train_seconds}


SHIPPED_GAN = _event("shipped", "gan", "gan.safetensors", 1800.0)     # the full recipe's long training
CACHED_VAE = _event("loaded", "vae", "vae-1a.pt", 40.0, waited=3.0)
TRAINED_DEC = _event("trained", "dec", "dec-2b.pt", 25.0)


# -- which models, from where ---------------------------------------------------------------------

def test_each_model_is_classified_by_where_it_came_from():
    models = run_record.models_used([SHIPPED_GAN, CACHED_VAE, TRAINED_DEC])
    assert {(m.name, m.origin) for m in models} == {("gan", "shipped"), ("vae", "cache"), ("dec", "trained")}


def test_a_model_trained_then_loaded_again_counts_as_trained():
    (model,) = run_record.models_used([TRAINED_DEC, _event("loaded", "dec", "dec-2b.pt", 25.0)])
    assert model.origin == "trained"
    (model,) = run_record.models_used([_event("loaded", "dec", "dec-2b.pt", 25.0), TRAINED_DEC])
    assert model.origin == "trained"


def test_an_unknown_event_or_a_missing_training_time_is_an_error():
    with pytest.raises(ValueError, match="unknown run-log event 'downloaded'"):
        run_record.models_used([_event("downloaded", "gan", "gan.pt", 1.0)])
    with pytest.raises(ValueError, match="no training time"):
        run_record.models_used([_event("loaded", "vae", "vae-1a.pt", None)])
    with pytest.raises(ValueError, match="origin must be one of"):
        ModelUse("gan", "gan.pt", "downloaded", 1.0)
    # a shipped model's card may lack the time: it is never charged anyway
    (model,) = run_record.models_used([_event("shipped", "gan", "gan.safetensors", None)])
    assert model.train_seconds == 0.0


# -- cold and warm times --------------------------------------------------------------------------

def _record(seconds, *events, **fields) -> Record:
    return Record.from_events(seconds, list(events), **fields)


def test_a_shipped_model_costs_no_training_in_the_cold_time():
    rec = _record(50.0, SHIPPED_GAN)
    assert rec.cold_seconds == 50.0 and rec.warm_seconds == 50.0 and not rec.warm_derived
    assert rec.state == "none"   # shipped models are outside the model cache
    assert rec.origin_lines() == ["shipped: gan"]


def test_cold_adds_cached_training_and_warm_subtracts_what_was_trained_now():
    rec = _record(100.0, SHIPPED_GAN, CACHED_VAE, TRAINED_DEC)
    assert rec.working_seconds == 97.0                      # minus the 3 s waited for the VAE's lock
    assert rec.cold_seconds == 97.0 + 40.0                  # the cached VAE's training; never the GAN's
    assert rec.warm_seconds == 97.0 - 25.0 and rec.warm_derived
    assert rec.state == "mixed"
    assert rec.origins_text() == "shipped: gan; from the cache: vae; trained now: dec"
    assert _record(10.0).origins_text() == "–"


def test_state_of_the_model_cache():
    assert _record(1.0, TRAINED_DEC).state == "cold"
    assert _record(1.0, CACHED_VAE, SHIPPED_GAN).state == "warm"


def test_the_record_survives_the_execution_cache_and_results_json():
    rec = _record(100.0, SHIPPED_GAN, CACHED_VAE, TRAINED_DEC, started=1000.0, jobs=2, run_id="7",
                  utils_sha="abc")
    stored = json.loads(json.dumps(rec.to_dict()))
    assert stored["execution_seconds"] == 100.0   # the key myst-nb reads as the notebook's run time
    assert stored["derived"]["cold_seconds"] == 137.0 and stored["derived"]["shipped"] == ["gan.safetensors"]
    back = Record.from_dict(stored)
    assert back == rec and back.finished == 1100.0


def test_a_record_from_another_runner_or_layout_is_not_read():
    stored = _record(1.0).to_dict()
    assert Record.from_dict({**stored, "runner": "jupyter-book"}) is None
    assert Record.from_dict({**stored, "version": run_record.VERSION - 1}) is None
    assert Record.from_dict({"execution_seconds": 3.0}) is None   # what myst-nb itself stores
    assert Record.from_dict(None) is None


def test_is_current_compares_the_utils_source():
    assert _record(1.0, utils_sha=run_record.utils_sha()).is_current()
    assert not _record(1.0, utils_sha="0" * 16).is_current()


def _book(**recs):
    return {stem: rec for stem, rec in sorted(recs.items())}


def test_book_cold_times_charge_a_cached_model_once_and_a_shipped_one_never():
    pre_cached = _event("loaded", "ssl", "ssl-9.pt", 60.0)
    recs = _book(a=_record(30.0, TRAINED_DEC, SHIPPED_GAN),
                 b=_record(20.0, _event("loaded", "dec", "dec-2b.pt", 25.0), pre_cached, SHIPPED_GAN),
                 c=_record(10.0, pre_cached))
    times = run_record.book_cold_times(recs)
    # dec was trained in this build (by a): nobody else pays for it; ssl was cached before the
    # build: charged to b, the first notebook that loaded it; gan is shipped: charged to nobody
    assert times == {"a": 30.0, "b": 80.0, "c": 10.0}
    assert run_record.book_cold_seconds(recs) == 120.0
    assert run_record.book_cold_times({**recs, "d": None}) is None


def test_book_cold_wall_time_needs_one_cold_batch():
    a = _record(30.0, TRAINED_DEC, SHIPPED_GAN, started=100.0, run_id="1")
    b = _record(20.0, _event("loaded", "dec", "dec-2b.pt", 25.0), SHIPPED_GAN, started=110.0, run_id="1")
    assert run_record.book_cold_wall_seconds(_book(a=a, b=b)) == 30.0   # 100 → 130; shipped models count not
    pre_cached = _record(5.0, CACHED_VAE, started=100.0, run_id="1")
    assert run_record.book_cold_wall_seconds(_book(a=a, c=pre_cached)) is None
    other_batch = _record(5.0, started=100.0, run_id="2")
    assert run_record.book_cold_wall_seconds(_book(a=a, c=other_batch)) is None
    assert run_record.book_cold_wall_seconds(_book(a=a, c=None)) is None


def test_records_reads_results_json_entries():
    results = {"02_b": {"record": _record(5.0).to_dict()}, "01_a": {"record": None}}
    assert list(run_record.records(results)) == ["01_a", "02_b"]
    assert run_record.records(results)["01_a"] is None and run_record.records(results)["02_b"].cold_seconds == 5.0


# -- the budget -----------------------------------------------------------------------------------

def _nb_with(tful: dict | None):
    nb = nbformat.v4.new_notebook()
    if tful is not None:
        nb.metadata["tful"] = tful
    return nb


def test_budget_from_a_notebook_or_its_path(tmp_path):
    assert run_record.budget(_nb_with({"budget_seconds": 60})) == 60.0
    assert run_record.budget(_nb_with(None)) is None
    path = tmp_path / "x.ipynb"
    nbformat.write(_nb_with({"budget_seconds": 180, "after": ["03"]}), path)
    assert run_record.budget(path) == 180.0 and run_record.tful_metadata(path)["after"] == ["03"]


@pytest.mark.parametrize("value", [0, -5, True, "60"])
def test_a_wrong_budget_is_an_error(value, tmp_path):
    path = tmp_path / "x.ipynb"
    nbformat.write(_nb_with({"budget_seconds": value}), path)
    with pytest.raises(ValueError, match=r"x\.ipynb: metadata\.tful\.budget_seconds must be a positive number"):
        run_record.budget(path)


# -- glued numbers --------------------------------------------------------------------------------

def _glue_output(name: str, text: str, display: bool = False):
    from myst_nb.ext.glue import GLUE_PREFIX

    prefix = "" if display else GLUE_PREFIX
    return nbformat.v4.new_output("display_data", data={prefix + "text/plain": text},
                                  metadata={"scrapbook": {"name": name, "mime_prefix": prefix}})


GLUED = {"int": ("3", 3.0), "float": ("0.25", 0.25), "numpy": ("np.float64(0.9)", 0.9),
         "numpy_int": ("np.int64(7)", 7.0), "negative": ("-1e-06", -1e-6), "shown": ("2.5", 2.5),
         "nan": ("nan", None), "np_nan": ("np.float64(nan)", None), "inf": ("inf", None),
         "bool": ("True", None), "np_bool": ("np.True_", None), "text": ("'k-means'", None),
         "figure": ("<Figure size 640x480 with 1 Axes>", None), "call": ("tensor(0.5)", None)}


def _glued_notebook():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [_glue_output(name, text, display=name == "shown") for name, (text, _) in GLUED.items()]
    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text="0.5\n"))   # not glued
    nb.cells = [cell]
    return nb


def test_glued_numbers_keep_finite_numbers_only():
    expected = {name: value for name, (_, value) in GLUED.items() if value is not None}
    assert run_record.glued_numbers(_glued_notebook()) == expected


def test_the_sweep_and_the_book_read_the_same_numbers():
    """The sweep reads an executed notebook; the book reads myst-nb's glue.json: the same rule for both."""
    from myst_nb.ext.glue import extract_glue_data

    nb = _glued_notebook()
    glue_json = json.loads(json.dumps(extract_glue_data(copy.deepcopy(nb), [0], None)))
    assert "text/plain" in glue_json["int"]["data"]   # myst-nb strips the prefix
    assert run_record.glue_file_numbers(glue_json) == run_record.glued_numbers(nb)


# -- failures -------------------------------------------------------------------------------------

TRACE = ("\x1b[31m---------------------------------------------------------------------------\x1b[39m\n"
         "\x1b[31mAssertionError\x1b[39m                            Traceback (most recent call last)\n"
         "Cell \x1b[32mIn[7]\x1b[39m, line 3\n"
         "      1 fid = evaluate(model)\n"
         "\x1b[32m----> 3\x1b[39m \x1b[38;5;28;01massert\x1b[39;00m fid < \x1b[32m15\x1b[39m, fid\n"
         "File ~/utils/metrics.py:12, in evaluate(m)\n"
         "\x1b[32m---> 12\x1b[39m raise ValueError\n")


def test_failure_line_names_the_cell_its_line_and_the_error():
    line = run_record.failure_line("\x1b[31mAssertionError\x1b[39m: 80.2\nmore", TRACE, 23)
    assert line == "cell 24, line 3 (assert fid < 15, fid): AssertionError: 80.2"
    assert run_record.arrow_line(TRACE) == "---> 12 raise ValueError"   # the sweep keeps the deepest frame
    assert run_record.failure_line("DeadKernelError: died", "", -1) == "before the first cell: DeadKernelError: died"
