import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from utils import attention, bench, checks, plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_plot_helpers_draw():
    plots.set_style()
    ax = plots.attention_heatmap(torch.softmax(torch.randn(3, 4), -1), list("abcd"), list("xyz"))
    assert ax.get_xlabel() == "key"
    ax = plots.line_plot([1, 2], {"a": [1, 2]}, xlabel="x", ylabel="y", title="t", logx=True)
    assert ax.get_title() == "t"
    ax = plots.image_grid(np.random.rand(12, 8, 8), ncols=5)
    assert ax.images[0].get_array().shape == (3 * 9 - 1, 5 * 9 - 1)
    fig = plots.sample_grids({"real": np.random.rand(20, 8, 8), "fake": torch.rand(20, 8, 8)}, n=20)
    assert len(fig.axes) == 2
    ax = plots.embedding_scatter(np.random.rand(30, 2), np.arange(30) % 3, label_names=["a", "b", "c"])
    assert len(ax.get_legend().get_texts()) == 3


def test_plot_errors():
    with pytest.raises(ValueError, match="2-D"):
        plots.attention_heatmap(torch.rand(2, 3, 3))
    with pytest.raises(ValueError, match="values for"):
        plots.line_plot([1, 2, 3], {"a": [1]}, xlabel="", ylabel="", title="")
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        plots.image_grid(np.zeros((0, 8, 8)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plots.embedding_scatter(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="labels for"):
        plots.embedding_scatter(np.zeros((5, 2)), [1, 2])


def test_sample_grids_leave_no_empty_band_under_the_title():
    fig = plots.sample_grids({"real": np.random.rand(40, 8, 8), "fake": np.random.rand(40, 8, 8)},
                             n=40, suptitle="a title")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    suptitle = fig.get_suptitle() and fig._suptitle.get_window_extent(renderer)
    title = fig.axes[0].title.get_window_extent(renderer)
    image = fig.axes[0].images[0].get_window_extent(renderer)
    assert (suptitle.y0 - title.y1) / fig.dpi < 0.3, "an empty band between the figure's title and the panels"
    assert (title.y0 - image.y1) / fig.dpi < 0.3, "an empty band between a panel's title and its images"
    with pytest.raises(ValueError, match=r"panel 'x'.*\(N, H, W\)"):
        plots.sample_grids({"x": np.zeros((4, 8))})
    with pytest.raises(ValueError, match="ncols"):
        plots.sample_grids({"x": np.zeros((4, 8, 8))}, ncols=0)
    with pytest.raises(ValueError, match="at least one"):
        plots.sample_grids({})


def test_bench_measures_time_and_memory():
    calls = []
    seconds = bench.time_call(lambda: (calls.append(1), time.sleep(0.02)), repeat=3, warmup=2)
    assert len(calls) == 5, "warmup and repeat runs"
    assert 0.02 <= seconds < 0.5, seconds  # the median of three 20 ms sleeps
    grown = bench.peak_memory(lambda: np.ones(64 * 2**20 // 8).sum())  # touch 64 MiB
    assert grown > 16 * 2**20
    with pytest.raises(ValueError):
        bench.time_call(lambda: None, repeat=0)
    with pytest.raises(ValueError):
        bench.peak_memory(lambda: None, interval=0)


def test_checks_pass_reference_and_fail_wrong_answers(capsys):
    assert checks.check_softmax(lambda x: attention.softmax(x, -1))
    naive = lambda x: x.exp() / x.exp().sum(-1, keepdim=True)  # noqa: E731
    assert not checks.check_softmax(naive)
    assert "Hint" in capsys.readouterr().out
    assert checks.check_attention(attention.scaled_dot_product_attention)
    assert not checks.check_attention(lambda q, k, v, m: v)


def test_checks_report_unimplemented_and_crashing_functions(capsys):
    def todo(x):
        raise NotImplementedError

    assert not checks.check_softmax(todo)
    assert "not implemented" in capsys.readouterr().out
    assert not checks.check_softmax(lambda x: x.foo())
    assert "raised AttributeError" in capsys.readouterr().out
    with pytest.raises(TypeError, match="function itself"):
        checks.check_softmax(42)


def test_encoding_and_norm_checks():
    from utils import transformer

    assert checks.check_sinusoidal_encoding(transformer.sinusoidal_positional_encoding)
    assert not checks.check_sinusoidal_encoding(lambda n, d: torch.zeros(n, d))
    ln = lambda x, g, b, e: torch.nn.functional.layer_norm(x, x.shape[-1:], g, b, e)  # noqa: E731
    assert checks.check_layer_norm(ln)
