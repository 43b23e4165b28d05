"""What a request costs: API prices from ``genai-prices``, and a self-hosting cost model.

Two sides of the build-vs-buy decision, in the same units (US dollars per day, per 1,000 requests):

* **Buy** — :class:`ApiModel` prices real models from the ``genai-prices`` package (Pydantic's
  maintained price database, https://github.com/pydantic/genai-prices). There is no hand-typed price
  table in the kit: every API price comes from :func:`genai_prices.calc_price`, and
  :func:`price_snapshot` says which version of the database answered.
* **Build** — :class:`SelfHosting` turns a *measured* throughput per machine into machines needed at
  peak, then into dollars per day: machine rent, electricity (only where it is not in the rent) and the
  staff who run the service. :func:`break_even_volume` finds the daily volume at which self-hosting
  becomes the cheaper option, and :meth:`SelfHosting.staff_share` the share of the bill that is people.

The default self-hosting parameters below are public list prices and statistics, each with its source
and the date it refers to. They age: check the source before you rely on a number, and pass your own.

Examples
--------
>>> mini = ApiModel("gpt-4o-mini", "openai")
>>> round(mini.cost(input_tokens=1_000_000, output_tokens=0), 4)   # genai-prices: $0.15 / M input tokens
0.15
>>> host = SelfHosting(hardware=cpu_vm(2), throughput_rps=4.0, staff_fte=0.25)
>>> int(host.machines(100_000))
2
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "ApiModel", "DEFAULT_API_MODELS", "price_snapshot", "price_table", "Hardware", "cpu_vm",
    "GPU_L4_VM", "CPU_VCPU_USD_PER_HOUR", "ELECTRICITY_USD_PER_KWH", "FTE_SALARY_USD_PER_YEAR",
    "WAGE_SHARE_OF_COMPENSATION", "FTE_USD_PER_YEAR", "SECONDS_PER_DAY", "SelfHosting",
    "machines_needed", "throughput_at_slo", "break_even_volume", "cost_curves", "break_even_table",
    "sensitivity", "peak_to_mean",
]

SECONDS_PER_DAY = 86_400.0
DAYS_PER_YEAR = 365.0


# =============================================================================================
# Buy: API prices from genai-prices
# =============================================================================================
def _genai_prices():
    try:
        import genai_prices
    except ImportError as exc:  # pragma: no cover - a pinned dependency of the kit
        raise ImportError("genai-prices is not installed. Fix: `pip install genai-prices==0.2.3` "
                          "(or `make install`).") from exc
    return genai_prices


def _as_utc(when: datetime | None) -> datetime:
    if when is None:
        return datetime.now(timezone.utc)
    if not isinstance(when, datetime):
        raise TypeError(f"when must be a datetime, got {type(when).__name__}")
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _check_tokens(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be a whole number of tokens, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


@dataclass(frozen=True)
class ApiModel:
    """One model behind one provider's API, priced by ``genai-prices``.

    Parameters
    ----------
    model : str
        The model id as the provider's API spells it, e.g. ``"gpt-4o-mini"``.
    provider : str
        The ``genai-prices`` provider id, e.g. ``"openai"``, ``"anthropic"``, ``"google"``.
    label : str, optional
        A short name for tables and plots (default ``"provider/model"``).

    Examples
    --------
    >>> m = ApiModel("gpt-4o-mini", "openai")
    >>> m.name
    'openai/gpt-4o-mini'
    >>> r = m.rates()
    >>> float(r["input_usd_per_mtok"]), float(r["output_usd_per_mtok"])
    (0.15, 0.6)
    """

    model: str
    provider: str
    label: str | None = None

    def __post_init__(self) -> None:
        for name in ("model", "provider"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"ApiModel.{name} must be a non-empty string, got {value!r}")

    @property
    def name(self) -> str:
        return self.label or f"{self.provider}/{self.model}"

    def _calc(self, input_tokens: int, output_tokens: int, cached_tokens: int, when: datetime | None):
        gp = _genai_prices()
        usage = gp.Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                         cache_read_tokens=cached_tokens or None)
        try:
            return gp.calc_price(usage, self.model, provider_id=self.provider, genai_request_timestamp=_as_utc(when))
        except LookupError as exc:
            raise LookupError(f"genai-prices {gp.__version__} has no price for model {self.model!r} at provider "
                              f"{self.provider!r} ({exc}). Fix: check the spelling (e.g. 'gpt-4o-mini', 'openai'), "
                              f"or list the models with `python -m genai_prices list {self.provider}`.") from exc

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0,
             when: datetime | None = None) -> float:
        """US dollars for one call with this usage.

        Parameters
        ----------
        input_tokens : int
            All prompt tokens, cached ones included (OpenAI's ``usage.prompt_tokens``).
        output_tokens : int
            Completion tokens (``usage.completion_tokens``).
        cached_tokens : int
            How many of the input tokens were read from the provider's prompt cache
            (``usage.prompt_tokens_details.cached_tokens``); billed at the cache-read price.
        when : datetime, optional
            When the call was made (prices change over time); default now.

        Examples
        --------
        >>> m = ApiModel("gpt-4o-mini", "openai")
        >>> round(m.cost(1000, 100, cached_tokens=400), 8)   # 600 x 0.15 + 400 x 0.075 + 100 x 0.6, per 1e6
        0.00018
        """
        i = _check_tokens("input_tokens", input_tokens)
        o = _check_tokens("output_tokens", output_tokens)
        c = _check_tokens("cached_tokens", cached_tokens)
        if c > i:
            raise ValueError(f"cached_tokens ({c}) cannot exceed input_tokens ({i}): cached tokens are part of the input")
        return float(self._calc(i, o, c, when).total_price)

    def rates(self, when: datetime | None = None) -> dict[str, float]:
        """Price per million input, output and cached-input tokens (US dollars) for an ordinary request.

        Measured on a 1,000-token request, so that long-context tiers (e.g. a higher rate above 200k
        prompt tokens) do not leak into the headline rate.

        Examples
        --------
        >>> ApiModel("claude-sonnet-4-5", "anthropic").rates()["input_usd_per_mtok"]   # not the >200k tier
        3.0
        """
        n, scale = 1_000, 1_000_000 / 1_000
        return {
            "input_usd_per_mtok": round(float(self._calc(n, 0, 0, when).total_price) * scale, 12),
            "output_usd_per_mtok": round(float(self._calc(0, n, 0, when).total_price) * scale, 12),
            "cached_input_usd_per_mtok": round(float(self._calc(n, 0, n, when).total_price) * scale, 12),
        }

    def costs(self, input_tokens: Sequence[int], output_tokens: Sequence[int],
              when: datetime | None = None) -> np.ndarray:
        """Cost of many calls (one per element), priced one by one (tiered prices stay exact).

        Examples
        --------
        >>> ApiModel("gpt-4o-mini", "openai").costs([1000, 1000], [0, 1000]).round(7).tolist()
        [0.00015, 0.00075]
        """
        i = np.asarray(input_tokens)
        o = np.asarray(output_tokens)
        if i.shape != o.shape or i.ndim != 1:
            raise ValueError(f"input_tokens and output_tokens must be 1-D and the same length, got {i.shape} and {o.shape}")
        if i.size == 0:
            return np.zeros(0)
        if not (np.issubdtype(i.dtype, np.integer) and np.issubdtype(o.dtype, np.integer)) or i.min() < 0 or o.min() < 0:
            raise ValueError("token counts must be whole numbers >= 0")
        linear = self._linear_rates(int(i.max()), int(o.max()), when)
        if linear is not None:  # the price is linear over this range: one multiply-add per call
            base, per_in, per_out = linear
            return base + i * per_in + o * per_out
        pairs, inverse = np.unique(np.stack([i, o], axis=1), axis=0, return_inverse=True)
        unique_cost = np.array([self.cost(int(a), int(b), when=when) for a, b in pairs])
        return unique_cost[np.ravel(inverse)]

    def _linear_rates(self, max_in: int, max_out: int, when: datetime | None) -> tuple[float, float, float] | None:
        """(fixed, per input token, per output token) when genai-prices is linear up to these counts, else None.

        Tiered prices (e.g. a higher rate for prompts over 200k tokens) break linearity; they are detected
        by pricing the largest request directly and comparing.
        """
        n_in, n_out = max(max_in, 1), max(max_out, 1)
        base = self.cost(0, 0, when=when)
        per_in = (self.cost(n_in, 0, when=when) - base) / n_in
        per_out = (self.cost(0, n_out, when=when) - base) / n_out
        for a, b in ((n_in, n_out), (n_in // 2, n_out // 2), (1, 0), (0, 1), (1, 1)):
            expected = base + a * per_in + b * per_out
            if not math.isclose(self.cost(a, b, when=when), expected, rel_tol=1e-9, abs_tol=1e-15):
                return None
        return base, per_in, per_out

    def cost_per_request(self, input_tokens: Sequence[int], output_tokens: Sequence[int],
                         when: datetime | None = None) -> float:
        """Mean cost of one request over a sample of requests (e.g. a traffic trace)."""
        return float(self.costs(input_tokens, output_tokens, when=when).mean())


#: Real models from several providers, cheapest to most expensive per token (at the package's prices).
#: ``gpt-4o-mini`` is the article's example of the "below ~100k requests/day, use the API" regime.
DEFAULT_API_MODELS: tuple[ApiModel, ...] = (
    ApiModel("llama-3.1-8b-instant", "groq", "Groq Llama-3.1-8B"),
    ApiModel("gemini-2.5-flash-lite", "google", "Gemini 2.5 Flash-Lite"),
    ApiModel("gpt-4o-mini", "openai", "GPT-4o mini"),
    ApiModel("mistral-small-latest", "mistral", "Mistral Small"),
    ApiModel("claude-haiku-4-5", "anthropic", "Claude Haiku 4.5"),
    ApiModel("gpt-4o", "openai", "GPT-4o"),
    ApiModel("claude-sonnet-4-5", "anthropic", "Claude Sonnet 4.5"),
)

_AS_OF = re.compile(r"(?:as of|checked|last updated|updated)\s+(20\d\d-\d\d-\d\d)", re.IGNORECASE)


def price_snapshot() -> dict[str, Any]:
    """Which price database answered: package version, whether it was auto-updated, and its data date.

    ``data_as_of`` is the latest date the package's own price notes say a price was checked
    ("checked 2026-10-15", "as of ..."): a lower bound on how fresh the snapshot is.

    Examples
    --------
    >>> info = price_snapshot()
    >>> info["package"], info["source"]
    ('genai-prices', 'bundled snapshot')
    """
    gp = _genai_prices()
    from genai_prices import data_snapshot

    snap = data_snapshot.get_snapshot()
    dates: list[str] = []
    n_models = 0
    for provider in snap.providers:
        texts = [provider.price_comments or ""]
        for model in provider.models:
            n_models += 1
            texts.append(model.price_comments or "")
        for text in texts:
            dates.extend(_AS_OF.findall(text))
    return {
        "package": "genai-prices",
        "version": gp.__version__,
        "source": "auto-updated snapshot" if snap.from_auto_update else "bundled snapshot",
        "data_as_of": max(dates) if dates else None,
        "providers": len(snap.providers),
        "models": n_models,
    }


def price_table(models: Iterable[ApiModel] = DEFAULT_API_MODELS, input_tokens: Sequence[int] | None = None,
                output_tokens: Sequence[int] | None = None, when: datetime | None = None) -> pd.DataFrame:
    """Per-token rates of each model and, given a request mix, its cost per request and per 1k requests.

    Examples
    --------
    >>> t = price_table([ApiModel("gpt-4o-mini", "openai")], [100], [50])
    >>> round(float(t.loc["openai/gpt-4o-mini", "usd_per_1k_requests"]), 6)
    0.045
    """
    rows = []
    for m in models:
        row = {"model": m.name, "provider": m.provider, "model_id": m.model, **m.rates(when)}
        if input_tokens is not None and output_tokens is not None:
            per = m.cost_per_request(input_tokens, output_tokens, when=when)
            row["usd_per_request"] = per
            row["usd_per_1k_requests"] = 1000 * per
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


# =============================================================================================
# Build: self-hosting parameters, each with its source
# =============================================================================================
#: US dollars per vCPU-hour of a general compute VM: AWS EC2 ``c7i.large`` (2 vCPU, 4 GiB, Intel Sapphire
#: Rapids), Linux, on-demand, us-east-1: $0.08925 per hour, i.e. $0.044625 per vCPU-hour.
#: Source: Amazon Web Services, "Amazon EC2 On-Demand Pricing", https://aws.amazon.com/ec2/pricing/on-demand/
#: (list price for 2024-2025; check the page for today's price and your region).
CPU_VCPU_USD_PER_HOUR = 0.08925 / 2

#: US average retail price of electricity to commercial customers, about 13 US cents per kWh.
#: Source: U.S. Energy Information Administration, *Electric Power Monthly*, Table 5.6.A "Average Price of
#: Electricity to Ultimate Customers by End-Use Sector" (2025 releases, e.g. data for April 2025 released
#: 2025-06-25), https://www.eia.gov/electricity/monthly/epm_table_grapher.php?t=epmt_5_6_a
ELECTRICITY_USD_PER_KWH = 0.13

#: Median annual wage of US software developers, May 2024: $133,080.
#: Source: U.S. Bureau of Labor Statistics, Occupational Employment and Wage Statistics, 15-1252 Software
#: Developers, https://www.bls.gov/oes/current/oes151252.htm (released 2025-04).
FTE_SALARY_USD_PER_YEAR = 133_080.0

#: Wages and salaries are about 70% of an employer's total cost per employee (the rest: benefits, payroll
#: taxes, insurance). Source: U.S. Bureau of Labor Statistics, "Employer Costs for Employee Compensation"
#: (private industry, 2024-2025 releases: wages ~70%, benefits ~30%), https://www.bls.gov/news.release/ecec.nr0.htm
WAGE_SHARE_OF_COMPENSATION = 0.70

#: Fully loaded cost of one engineer-year: salary / wage share (about $190k).
FTE_USD_PER_YEAR = FTE_SALARY_USD_PER_YEAR / WAGE_SHARE_OF_COMPENSATION


@dataclass(frozen=True)
class Hardware:
    """One machine you rent or own.

    Parameters
    ----------
    name : str
    usd_per_hour : float
        Rent per machine-hour (or purchase price amortised per hour, for hardware you own).
    power_kw : float
        Average power draw of the machine, kW. Only used when ``electricity_included`` is False.
    electricity_included : bool
        True for cloud rent (the provider pays the power bill); False for hardware you own.
    source : str
        Where ``usd_per_hour`` and ``power_kw`` come from (vendor page and date).

    Examples
    --------
    >>> Hardware("my box", usd_per_hour=0.10, power_kw=0.3, electricity_included=False).usd_per_day(0.13)
    3.336
    """

    name: str
    usd_per_hour: float
    power_kw: float = 0.0
    electricity_included: bool = True
    source: str = ""

    def __post_init__(self) -> None:
        for attr in ("usd_per_hour", "power_kw"):
            value = getattr(self, attr)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"Hardware.{attr} must be a finite number >= 0, got {value!r}")

    def electricity_usd_per_day(self, usd_per_kwh: float) -> float:
        return 0.0 if self.electricity_included else self.power_kw * 24.0 * usd_per_kwh

    def usd_per_day(self, usd_per_kwh: float = ELECTRICITY_USD_PER_KWH) -> float:
        """Rent plus electricity for one machine running 24 hours."""
        return round(self.usd_per_hour * 24.0 + self.electricity_usd_per_day(usd_per_kwh), 10)


def cpu_vm(vcpus: int) -> Hardware:
    """A cloud CPU VM with ``vcpus`` vCPUs, priced per vCPU like AWS ``c7i`` (see :data:`CPU_VCPU_USD_PER_HOUR`).

    Examples
    --------
    >>> cpu_vm(2).usd_per_hour
    0.08925
    """
    if isinstance(vcpus, bool) or not isinstance(vcpus, (int, np.integer)) or vcpus < 1:
        raise ValueError(f"vcpus must be a positive whole number, got {vcpus!r}")
    return Hardware(f"cloud CPU VM, {vcpus} vCPU (AWS c7i rate)", round(CPU_VCPU_USD_PER_HOUR * vcpus, 6), 0.0, True,
                    "AWS EC2 On-Demand Pricing, c7i.large $0.08925/h (2 vCPU), Linux, us-east-1, "
                    "https://aws.amazon.com/ec2/pricing/on-demand/ (2024-2025 list price)")


#: One NVIDIA L4 GPU in the cloud: AWS EC2 ``g6.xlarge`` (1x L4 24 GB, 4 vCPU, 16 GiB), Linux, on-demand,
#: us-east-1, $0.8048 per hour (https://aws.amazon.com/ec2/instance-types/g6/ and the on-demand pricing page,
#: 2024-2025 list price). Power: the L4's maximum board power is 72 W (NVIDIA L4 Tensor Core GPU datasheet,
#: https://www.nvidia.com/en-us/data-center/l4/); electricity is in the rent.
GPU_L4_VM = Hardware("cloud GPU VM, 1x NVIDIA L4 (AWS g6.xlarge)", 0.8048, 0.072, True,
                     "AWS EC2 g6.xlarge on-demand $0.8048/h, us-east-1, https://aws.amazon.com/ec2/pricing/on-demand/ "
                     "(2024-2025 list price); NVIDIA L4 datasheet, 72 W max board power")


def peak_to_mean(timestamps: Sequence[Any] | pd.Series, freq: str = "5min") -> float:
    """Peak request rate over the mean rate, with the rate counted per ``freq`` window.

    Capacity is planned for the peak, paid for all day: this ratio is what turns "requests per day"
    into "machines". A per-minute window sees every spike; a 5-minute window (the default) is what a
    fleet with a few minutes of queueing or autoscaling lag has to absorb.

    Examples
    --------
    >>> ts = pd.to_datetime(["2025-04-08 00:00:00", "2025-04-08 00:00:30", "2025-04-08 00:01:10"], utc=True)
    >>> peak_to_mean(pd.Series(ts), freq="1min")    # 2 requests in the busiest minute, 1.5 per minute on average
    1.3333333333333333
    """
    ts = pd.to_datetime(pd.Series(timestamps), utc=True)
    if ts.empty:
        raise ValueError("timestamps is empty; pass the arrival times of at least one request")
    counts = ts.dt.floor(freq).value_counts()
    span = pd.date_range(ts.min().floor(freq), ts.max().floor(freq), freq=freq)
    counts = counts.reindex(span, fill_value=0)
    return float(counts.max() / counts.mean())


def machines_needed(peak_rps: float | np.ndarray, throughput_rps: float, utilisation: float = 0.6,
                    min_machines: int = 1) -> np.ndarray | int:
    """Machines to serve a peak load, each run at most at ``utilisation`` of its measured throughput.

    ``ceil(peak_rps / (throughput_rps * utilisation))``, and never fewer than ``min_machines``.

    Parameters
    ----------
    peak_rps : float or array
        Peak request rate (requests per second) the fleet must absorb.
    throughput_rps : float
        Requests per second one machine sustains *within the latency SLO* (measure it:
        :func:`throughput_at_slo`).
    utilisation : float in (0, 1]
        The share of that throughput you plan to use at peak; the rest is headroom for bursts,
        slow requests and a machine failing.
    min_machines : int
        Floor for redundancy (2 = survive one failure).

    Examples
    --------
    >>> machines_needed(10.0, throughput_rps=4.0, utilisation=0.5)
    5
    >>> machines_needed([0.0, 2.0, 2.01], throughput_rps=1.0, utilisation=1.0, min_machines=2).tolist()
    [2, 2, 3]
    """
    if not (isinstance(throughput_rps, (int, float, np.floating, np.integer)) and throughput_rps > 0
            and math.isfinite(throughput_rps)):
        raise ValueError(f"throughput_rps must be a positive number, got {throughput_rps!r}")
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must be in (0, 1], got {utilisation!r}")
    if isinstance(min_machines, bool) or int(min_machines) != min_machines or min_machines < 0:
        raise ValueError(f"min_machines must be a whole number >= 0, got {min_machines!r}")
    peak = np.asarray(peak_rps, dtype=float)
    if np.any(~np.isfinite(peak)) or np.any(peak < 0):
        raise ValueError("peak_rps must be finite and >= 0")
    ratio = peak / (throughput_rps * utilisation)
    # 1e-9 relative slack: 3 * (1/3) must not round up to 2 machines
    n = np.ceil(ratio * (1 - 1e-9))
    n = np.maximum(n, min_machines).astype(int)
    return int(n) if n.ndim == 0 else n


def throughput_at_slo(capacity: pd.DataFrame, slo_p95_s: float, throughput: str = "throughput_rps",
                      latency: str = "p95_s") -> float:
    """The highest measured throughput whose p95 latency meets the SLO.

    Parameters
    ----------
    capacity : DataFrame
        One row per load level (e.g. concurrency) with a throughput and a p95 latency column.
    slo_p95_s : float
        The latency objective, seconds.

    Raises
    ------
    ValueError
        When no load level meets the SLO (a single machine cannot serve it: shorten the replies or
        get faster hardware).

    Examples
    --------
    >>> cap = pd.DataFrame({"throughput_rps": [1.0, 1.8, 2.5], "p95_s": [0.5, 0.9, 2.0]})
    >>> throughput_at_slo(cap, slo_p95_s=1.0)
    1.8
    """
    for col in (throughput, latency):
        if col not in capacity.columns:
            raise ValueError(f"capacity needs a {col!r} column; it has {list(capacity.columns)}")
    if not slo_p95_s > 0:
        raise ValueError(f"slo_p95_s must be > 0, got {slo_p95_s!r}")
    ok = capacity[capacity[latency] <= slo_p95_s]
    if ok.empty:
        best = float(capacity[latency].min()) if len(capacity) else float("nan")
        raise ValueError(f"no load level meets p95 <= {slo_p95_s} s (the best measured p95 is {best:.3g} s): "
                         "one machine cannot serve this SLO; relax it, shorten max_tokens or use faster hardware")
    return float(ok[throughput].max())


@dataclass(frozen=True)
class SelfHosting:
    """The daily cost of serving a model yourself, as a function of daily request volume.

    A fixed fleet sized for the peak runs around the clock (no autoscaling): ``machines(volume)``
    machines, each costing its rent plus electricity, plus the people who run the service.

    Parameters
    ----------
    hardware : Hardware
        The machine type (:func:`cpu_vm`, :data:`GPU_L4_VM` or your own).
    throughput_rps : float
        Requests per second one machine sustains within the latency SLO — *measured* on the kit's
        server (:func:`throughput_at_slo`).
    utilisation : float
        Planned peak utilisation of that throughput (default 0.6: 40% headroom).
    peak_to_mean : float
        Peak request rate over the day's mean rate (measure it on your traffic; the kit's trace:
        :func:`peak_to_mean`).
    min_machines : int
        Never fewer machines than this (2 survives one failure).
    staff_fte : float
        Engineer-years spent running the service (on-call, upgrades, model and security updates,
        capacity planning). An assumption you must make explicit; 0.5 by default.
    fte_usd_per_year : float
        Fully loaded cost of one engineer-year (:data:`FTE_USD_PER_YEAR`, from BLS).
    electricity_usd_per_kwh : float
        :data:`ELECTRICITY_USD_PER_KWH` (EIA); matters only for hardware you own.

    Examples
    --------
    >>> host = SelfHosting(cpu_vm(2), throughput_rps=5.0, utilisation=0.5, peak_to_mean=3.0,
    ...                    min_machines=2, staff_fte=0.5, fte_usd_per_year=182_500.0)
    >>> int(host.machines(1_000_000))     # peak 34.7 req/s over 2.5 req/s per machine
    14
    >>> round(float(host.cost_per_day(1_000_000)), 2)   # 14 x 24 h x $0.08925 + 0.5 x $500/day
    279.99
    >>> round(float(host.staff_share(1_000_000)), 3)
    0.893
    """

    hardware: Hardware
    throughput_rps: float
    utilisation: float = 0.6
    peak_to_mean: float = 3.0
    min_machines: int = 2
    staff_fte: float = 0.5
    fte_usd_per_year: float = FTE_USD_PER_YEAR
    electricity_usd_per_kwh: float = ELECTRICITY_USD_PER_KWH

    def __post_init__(self) -> None:
        if not isinstance(self.hardware, Hardware):
            raise TypeError(f"hardware must be a Hardware (e.g. cpu_vm(2)), got {type(self.hardware).__name__}")
        checks = {
            "throughput_rps": self.throughput_rps > 0,
            "utilisation": 0 < self.utilisation <= 1,
            "peak_to_mean": self.peak_to_mean >= 1,
            "staff_fte": self.staff_fte >= 0,
            "fte_usd_per_year": self.fte_usd_per_year >= 0,
            "electricity_usd_per_kwh": self.electricity_usd_per_kwh >= 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value) or not ok:
                raise ValueError(f"SelfHosting.{name} = {value!r} is out of range (throughput_rps > 0, "
                                 "0 < utilisation <= 1, peak_to_mean >= 1, costs and staff >= 0)")
        if isinstance(self.min_machines, bool) or int(self.min_machines) != self.min_machines or self.min_machines < 1:
            raise ValueError(f"SelfHosting.min_machines must be a whole number >= 1, got {self.min_machines!r}")

    # ---- building blocks ----------------------------------------------------------------
    @property
    def requests_per_machine_day(self) -> float:
        """Daily volume one machine can take, given the peak-to-mean ratio and the utilisation."""
        return self.throughput_rps * self.utilisation * SECONDS_PER_DAY / self.peak_to_mean

    @property
    def machine_usd_per_day(self) -> float:
        return self.hardware.usd_per_day(self.electricity_usd_per_kwh)

    @property
    def staff_usd_per_day(self) -> float:
        return self.staff_fte * self.fte_usd_per_year / DAYS_PER_YEAR

    def peak_rps(self, daily_requests: float | np.ndarray) -> np.ndarray:
        return _volume(daily_requests) * self.peak_to_mean / SECONDS_PER_DAY

    def machines(self, daily_requests: float | np.ndarray) -> np.ndarray:
        """Machines needed at peak for each daily volume."""
        return np.asarray(machines_needed(self.peak_rps(daily_requests), self.throughput_rps, self.utilisation,
                                          self.min_machines))

    # ---- costs ---------------------------------------------------------------------------
    def hardware_cost_per_day(self, daily_requests: float | np.ndarray) -> np.ndarray:
        """Rent of the fleet (no electricity), US dollars per day."""
        return self.machines(daily_requests) * self.hardware.usd_per_hour * 24.0

    def electricity_cost_per_day(self, daily_requests: float | np.ndarray) -> np.ndarray:
        return self.machines(daily_requests) * self.hardware.electricity_usd_per_day(self.electricity_usd_per_kwh)

    def cost_per_day(self, daily_requests: float | np.ndarray) -> np.ndarray:
        """Total self-hosting cost, US dollars per day: machines + electricity + staff."""
        return self.machines(daily_requests) * self.machine_usd_per_day + self.staff_usd_per_day

    def cost_per_1k(self, daily_requests: float | np.ndarray) -> np.ndarray:
        """US dollars per 1,000 requests at that daily volume (falls with volume: the fixed costs spread)."""
        v = _volume(daily_requests)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v > 0, 1000.0 * self.cost_per_day(v) / np.where(v > 0, v, 1), np.inf)

    def staff_share(self, daily_requests: float | np.ndarray) -> np.ndarray:
        """Share of the daily self-hosting cost that is staff (the article: 70-80%)."""
        total = self.cost_per_day(daily_requests)
        return np.where(total > 0, self.staff_usd_per_day / np.where(total > 0, total, 1), 0.0)

    def breakdown(self, daily_requests: float | Sequence[float]) -> pd.DataFrame:
        """One row per daily volume: machines, each cost line, total, per 1k requests, staff share.

        Examples
        --------
        >>> SelfHosting(cpu_vm(2), throughput_rps=5.0).breakdown([1e3, 1e6]).columns.tolist()[:4]
        ['machines', 'hardware_usd', 'electricity_usd', 'staff_usd']
        """
        v = np.atleast_1d(_volume(daily_requests))
        frame = pd.DataFrame({
            "machines": self.machines(v),
            "hardware_usd": self.hardware_cost_per_day(v),
            "electricity_usd": self.electricity_cost_per_day(v),
            "staff_usd": np.full(v.shape, self.staff_usd_per_day),
        }, index=pd.Index(v, name="daily_requests"))
        frame["total_usd"] = frame["hardware_usd"] + frame["electricity_usd"] + frame["staff_usd"]
        frame["usd_per_1k"] = self.cost_per_1k(v)
        frame["staff_share"] = self.staff_share(v)
        return frame

    def with_(self, **changes: Any) -> "SelfHosting":
        """A copy with some parameters changed (for sensitivity analyses)."""
        return replace(self, **changes)


def _volume(daily_requests: float | np.ndarray) -> np.ndarray:
    v = np.asarray(daily_requests, dtype=float)
    if np.any(~np.isfinite(v)) or np.any(v < 0):
        raise ValueError("daily_requests must be finite and >= 0")
    return v


# =============================================================================================
# Break-even
# =============================================================================================
def break_even_volume(api_usd_per_request: float, selfhost: SelfHosting, max_volume: float = 1e12) -> float:
    """The smallest daily volume at which self-hosting costs no more than the API.

    The API costs ``api_usd_per_request * V`` per day. Self-hosting costs
    ``m(V) * machine_usd_per_day + staff_usd_per_day`` with ``m(V)`` machines, a step function of the
    volume. The answer is exact (no grid): for each fleet size ``m``, the volumes it can serve are
    ``(V_{m-1}, V_m]`` with ``V_m = m * requests_per_machine_day``, and the API catches up with its
    constant cost ``C_m`` at ``C_m / api_usd_per_request``.

    Returns ``inf`` when the API stays cheaper up to ``max_volume`` (e.g. its price per request is
    below the marginal machine cost per request).

    Examples
    --------
    >>> host = SelfHosting(cpu_vm(2), throughput_rps=5.0, utilisation=0.5, peak_to_mean=3.0,
    ...                    min_machines=2, staff_fte=0.5, fte_usd_per_year=182_500.0)
    >>> round(break_even_volume(4e-5, host))   # GPT-4o-mini-like price per request: 339 machines
    24403450
    >>> round(break_even_volume(1e-4, host))   # 2.5x dearer API: 50 machines
    3571000
    >>> break_even_volume(1e-7, host)          # cheaper than a machine's marginal cost: never
    inf
    """
    a = float(api_usd_per_request)
    if not math.isfinite(a) or a < 0:
        raise ValueError(f"api_usd_per_request must be a finite number >= 0, got {api_usd_per_request!r}")
    if not isinstance(selfhost, SelfHosting):
        raise TypeError(f"selfhost must be a SelfHosting, got {type(selfhost).__name__}")
    if a == 0:
        return math.inf
    per_machine = selfhost.requests_per_machine_day
    machine_day = selfhost.machine_usd_per_day
    staff = selfhost.staff_usd_per_day
    m0 = int(selfhost.min_machines)

    def crossing(m: int, lower: float) -> float | None:
        upper = m * per_machine
        at = max(lower, (m * machine_day + staff) / a)
        return at if at <= upper * (1 + 1e-12) else None

    # fleet of the minimum size: volumes [0, V_m0]
    hit = crossing(m0, 0.0)
    if hit is not None:
        return min(hit, max_volume) if hit <= max_volume else math.inf
    # Beyond it, the API gains a * per_machine per extra machine while self-hosting adds machine_day:
    # if the API's marginal cost does not exceed a machine's, the gap never closes.
    if a * per_machine <= machine_day:
        return math.inf
    # Jump to the first fleet size whose upper volume could reach the crossing, then walk.
    m_first = max(m0 + 1, math.floor((staff / (a * per_machine - machine_day))) - 1)
    m = m_first
    while True:
        lower = (m - 1) * per_machine
        if lower > max_volume:
            return math.inf
        hit = crossing(m, lower)
        if hit is not None:
            return hit if hit <= max_volume else math.inf
        m += 1


def cost_curves(volumes: Sequence[float], api_usd_per_request: dict[str, float],
                selfhost: dict[str, SelfHosting] | SelfHosting) -> pd.DataFrame:
    """Daily cost of every option at every volume, long format (``volume, option, kind, usd_per_day``).

    Examples
    --------
    >>> c = cost_curves([1e3, 1e6], {"api": 1e-4}, SelfHosting(cpu_vm(2), throughput_rps=5.0))
    >>> sorted(c["option"].unique())
    ['api', 'self-hosted']
    """
    v = np.atleast_1d(_volume(volumes))
    hosts = selfhost if isinstance(selfhost, dict) else {"self-hosted": selfhost}
    rows = []
    for name, per in api_usd_per_request.items():
        rows.append(pd.DataFrame({"volume": v, "option": name, "kind": "api", "usd_per_day": v * float(per)}))
    for name, host in hosts.items():
        b = host.breakdown(v)
        rows.append(pd.DataFrame({"volume": v, "option": name, "kind": "self-hosted",
                                  "usd_per_day": b["total_usd"].to_numpy(), "machines": b["machines"].to_numpy(),
                                  "staff_share": b["staff_share"].to_numpy()}))
    out = pd.concat(rows, ignore_index=True)
    out["usd_per_1k"] = np.where(out["volume"] > 0, 1000 * out["usd_per_day"] / out["volume"].where(out["volume"] > 0, 1),
                                 np.inf)
    return out


def break_even_table(api_usd_per_request: dict[str, float], selfhost: SelfHosting) -> pd.DataFrame:
    """Break-even daily volume of ``selfhost`` against each API option, with the staff share there.

    Examples
    --------
    >>> t = break_even_table({"cheap": 1e-7, "dear": 1e-3}, SelfHosting(cpu_vm(2), throughput_rps=5.0))
    >>> bool(np.isinf(t.loc["cheap", "break_even_requests_per_day"]))
    True
    """
    rows = []
    for name, per in api_usd_per_request.items():
        v = break_even_volume(per, selfhost)
        finite = math.isfinite(v)
        rows.append({
            "option": name, "api_usd_per_1k": 1000 * per, "break_even_requests_per_day": v,
            "machines_there": int(selfhost.machines(v)) if finite else np.nan,
            "self_host_usd_per_day_there": float(selfhost.cost_per_day(v)) if finite else np.nan,
            "staff_share_there": float(selfhost.staff_share(v)) if finite else np.nan,
        })
    return pd.DataFrame(rows).set_index("option")


def sensitivity(api_usd_per_request: float, selfhost: SelfHosting, **grids: Sequence[float]) -> pd.DataFrame:
    """Break-even volume over a grid of changed self-hosting parameters (all combinations).

    Examples
    --------
    >>> s = sensitivity(1e-4, SelfHosting(cpu_vm(2), throughput_rps=5.0), staff_fte=[0.25, 1.0],
    ...                 utilisation=[0.3, 0.6])
    >>> len(s), bool((s.groupby("utilisation")["break_even_requests_per_day"].apply(lambda x: x.is_monotonic_increasing)).all())
    (4, True)
    """
    if not grids:
        raise ValueError("pass at least one parameter grid, e.g. staff_fte=[0.25, 0.5, 1.0]")
    names = list(grids)
    for name in names:
        if name not in SelfHosting.__dataclass_fields__ or name == "hardware":
            raise ValueError(f"{name!r} is not a numeric SelfHosting parameter; choose from "
                             f"{[n for n in SelfHosting.__dataclass_fields__ if n != 'hardware']}")
    rows = []
    for values in np.array(np.meshgrid(*[np.asarray(grids[n], dtype=float) for n in names], indexing="ij")).reshape(len(names), -1).T:
        changes = {n: (int(x) if n == "min_machines" else float(x)) for n, x in zip(names, values)}
        host = selfhost.with_(**changes)
        rows.append({**changes, "break_even_requests_per_day": break_even_volume(api_usd_per_request, host)})
    return pd.DataFrame(rows)
