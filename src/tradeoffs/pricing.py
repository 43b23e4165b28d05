"""What a request costs: API prices from ``genai-prices``, and a self-hosting cost model.

Two sides of the build-vs-buy decision, in the same units (US dollars per day, per 1,000 requests):

* **Buy** — :class:`ApiModel` prices real models from the ``genai-prices`` package (Pydantic's
  maintained price database, https://github.com/pydantic/genai-prices). There is no hand-typed price
  table in the kit: every API price comes from :func:`genai_prices.calc_price`, and
  :func:`price_snapshot` says which version of the database answered.
* **Build** — the inputs of a self-hosting bill, each with its source: the rent of a machine
  (:class:`Hardware`, :func:`cpu_vm`, :data:`GPU_L4_VM`), electricity, the fully loaded cost of an
  engineer-year (:data:`FTE_USD_PER_YEAR`), the peak-to-mean ratio of a traffic trace
  (:func:`peak_to_mean`) and machines for a peak load (:func:`machines_needed`). Turning a measured
  throughput into a daily bill, a break-even volume and a staff share is lab 1's graded work: the
  kit does not ship it. :func:`what_if` is lab 1's calculator, run on the learner's own functions.

The default self-hosting parameters below are public list prices and statistics, each with its source
and the date it refers to. They age: check the source before you rely on a number, and pass your own.

Examples
--------
>>> mini = ApiModel("gpt-4o-mini", "openai")
>>> round(mini.cost(input_tokens=1_000_000, output_tokens=0), 4)   # genai-prices: $0.15 / M input tokens
0.15
>>> round(cpu_vm(2).usd_per_day(), 4)   # one 2-vCPU VM for a day, AWS c7i list price
2.142
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "ApiModel", "DEFAULT_API_MODELS", "price_snapshot", "price_table", "Hardware", "cpu_vm",
    "GPU_L4_VM", "CPU_VCPU_USD_PER_HOUR", "ELECTRICITY_USD_PER_KWH", "FTE_SALARY_USD_PER_YEAR",
    "WAGE_SHARE_OF_COMPENSATION", "FTE_USD_PER_YEAR", "SECONDS_PER_DAY", "DAYS_PER_YEAR",
    "machines_needed", "peak_to_mean", "what_if", "api_costs_per_million", "batch_price_available",
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
        Requests per second one machine sustains *within the latency SLO* (measure it under load).
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


# =============================================================================================
# The what-if calculator of lab 1: the learner's own functions over the learner's measured numbers
# =============================================================================================
def what_if(monthly_volume: float, staff_usd_per_year: float, api_usd_per_1k: float, machine_usd_per_hour: float,
            *, requests_per_machine_day: float, min_machines: int, self_host_day: Callable[..., Mapping[str, Any]],
            break_even: Callable[..., float], days_per_month: float = 30.0) -> pd.DataFrame:
    """One state of the "where does the trade-off flip" calculator: the API and self-hosting at one month.

    The callback of :func:`tradeoffs.whatif.calculator` in lab 1. It holds no cost model of its own:
    the daily bill of self-hosting and the break-even volume come from the two functions passed in
    (in the lab, the learner's ``self_host_day`` and ``break_even``), fed with the slider values and the
    learner's measured capacity of one machine.

    Parameters
    ----------
    monthly_volume : float
        Requests per month (spread evenly over ``days_per_month`` days).
    staff_usd_per_year : float
        What the people who run the self-hosted service cost per year, fully loaded.
    api_usd_per_1k : float
        What the API charges for 1,000 requests of your mix.
    machine_usd_per_hour : float
        Rent of one serving machine (a GPU VM, or the CPU VM you measured).
    requests_per_machine_day : float
        Daily volume one machine takes (from your measured throughput, utilisation and peak).
    min_machines : int
        Fleet floor.
    self_host_day : callable
        ``self_host_day(volume, machine_usd_per_day, requests_per_machine_day, staff_usd_per_day, min_machines)``
        returning a mapping with ``machines``, ``total_usd`` and ``staff_share``.
    break_even : callable
        ``break_even(api_usd_per_request, machine_usd_per_day, requests_per_machine_day, staff_usd_per_day,
        min_machines)`` returning a daily volume (``inf`` when there is none).
    days_per_month : float
        Days in the month (default 30).

    Returns
    -------
    DataFrame
        One ``value`` column, one row per quantity (monthly costs, machines, staff share, break-even).

    Examples
    --------
    >>> def day(volume, machine, per_machine, staff, floor):   # a toy: a fixed fleet, whatever the traffic
    ...     return {"machines": floor, "total_usd": floor * machine + staff,
    ...             "staff_share": staff / (floor * machine + staff)}
    >>> out = what_if(3_000_000, 36_500.0, 1.0, 1.0, requests_per_machine_day=50_000, min_machines=2,
    ...               self_host_day=day, break_even=lambda *args: 123_000.0)
    >>> out                # API: 3,000 x $1; self-hosting: 30 days x (2 machines x $24 + $100 of staff)
                                   value
    requests/month               3000000
    API, US$/month                3000.0
    self-hosting, US$/month       4440.0
    self-hosting machines              2
    staff share of self-hosting    0.676
    break-even, requests/month   3690000
    """
    for name, value in (("monthly_volume", monthly_volume), ("staff_usd_per_year", staff_usd_per_year),
                        ("api_usd_per_1k", api_usd_per_1k), ("machine_usd_per_hour", machine_usd_per_hour)):
        if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not days_per_month > 0:
        raise ValueError(f"days_per_month must be > 0, got {days_per_month!r}")
    daily = float(monthly_volume) / days_per_month
    machine_day = float(machine_usd_per_hour) * 24.0
    staff_day = float(staff_usd_per_year) / DAYS_PER_YEAR
    api_per_request = float(api_usd_per_1k) / 1000.0
    host = self_host_day(daily, machine_day, requests_per_machine_day, staff_day, min_machines)
    be_daily = float(break_even(api_per_request, machine_day, requests_per_machine_day, staff_day, min_machines))
    be_month = be_daily * days_per_month
    rows = {  # rounded for reading; an object column keeps pandas from printing them in scientific notation
        "requests/month": int(round(float(monthly_volume))),
        "API, US$/month": round(api_per_request * float(monthly_volume), 2),
        "self-hosting, US$/month": round(float(host["total_usd"]) * days_per_month, 2),
        "self-hosting machines": int(host["machines"]),
        "staff share of self-hosting": round(float(host["staff_share"]), 3),
        "break-even, requests/month": int(round(be_month)) if math.isfinite(be_month) else math.inf,
    }
    return pd.DataFrame({"value": pd.Series(rows, dtype=object)})


# --------------------------------------------------------------------------------------------
# API prices of a request mix, synchronous and batch (lab 4 prices a million predictions with them)
# --------------------------------------------------------------------------------------------
def _calc(model, provider: str, prompt_tokens: int, completion_tokens: int, context: dict | None,
          when: datetime | None) -> float:
    import genai_prices as gp

    usage = gp.Usage(input_tokens=int(prompt_tokens), output_tokens=int(completion_tokens))
    try:
        return float(gp.calc_price(usage, model, provider_id=provider, genai_request_timestamp=when,
                                   price_context=context).total_price)
    except LookupError as exc:
        raise LookupError(f"genai-prices has no price for {model!r} at {provider!r} ({exc}); check the spelling, "
                          f"or list models with `python -m genai_prices list {provider}`") from exc


def batch_price_available(model: str, provider: str, when: datetime | None = None) -> bool:
    """Whether ``genai-prices`` holds a batch price for the model (a ``processing=batch`` variant).

    Examples
    --------
    >>> batch_price_available("gpt-4o-mini", "openai")
    True
    """
    sync = _calc(model, provider, 1_000_000, 1_000_000, None, when)
    batch = _calc(model, provider, 1_000_000, 1_000_000, {"processing": "batch"}, when)
    return batch < sync


def api_costs_per_million(models: Sequence[Any], prompt_tokens: Sequence[int], completion_tokens: Sequence[int],
                          when: datetime | None = None) -> pd.DataFrame:
    """Dollars per million requests with this request mix, at each model's synchronous and batch
    prices, from ``genai-prices`` (``price_context={"processing": "batch"}`` selects the batch price:
    OpenAI's Batch API and Anthropic's Message Batches are half price).

    Parameters
    ----------
    models : sequence of ``tradeoffs.pricing.ApiModel`` (or ``(model, provider)`` pairs)
    prompt_tokens, completion_tokens : sequences of int
        One element per request of the mix (e.g. a traffic trace's columns).

    Returns
    -------
    DataFrame indexed by model name: ``sync_usd_per_million``, ``batch_usd_per_million`` (NaN when
    the package has no batch price for that model) and ``batch_discount``.
    """
    p = np.asarray(prompt_tokens, dtype=np.int64)
    c = np.asarray(completion_tokens, dtype=np.int64)
    if p.ndim != 1 or p.shape != c.shape or p.size == 0:
        raise ValueError("prompt_tokens and completion_tokens must be 1-D, non-empty and the same length")
    if np.any(p < 0) or np.any(c < 0):
        raise ValueError("token counts must be >= 0")
    rows = []
    for m in models:
        model, provider, name = (m.model, m.provider, m.name) if hasattr(m, "provider") else (m[0], m[1], f"{m[1]}/{m[0]}")
        has_batch = batch_price_available(model, provider, when)
        contexts = {"sync": None, "batch": {"processing": "batch"}} if has_batch else {"sync": None}
        row: dict[str, Any] = {"model": name, "batch_usd_per_million": float("nan"), "batch_discount": float("nan")}
        for kind, ctx in contexts.items():
            row[f"{kind}_usd_per_million"] = 1e6 * _mean_cost(model, provider, p, c, ctx, when)
        if has_batch:
            row["batch_discount"] = 1 - row["batch_usd_per_million"] / row["sync_usd_per_million"]
        rows.append(row)
    cols = ["model", "sync_usd_per_million", "batch_usd_per_million", "batch_discount"]
    return pd.DataFrame(rows)[cols].set_index("model")


def _mean_cost(model: str, provider: str, p: np.ndarray, c: np.ndarray, context: dict | None,
               when: datetime | None) -> float:
    """Mean price of the requests ``(p[i], c[i])``. Per-token prices are additive in input and
    output tokens, so each distinct prompt length and completion length is priced once; when the
    largest request shows they are not (a tier that depends on both), every distinct pair is priced."""
    pmax, cmax = int(p.max()), int(c.max())
    whole = _calc(model, provider, pmax, cmax, context, when)
    parts = _calc(model, provider, pmax, 0, context, when) + _calc(model, provider, 0, cmax, context, when)
    if math.isclose(whole, parts, rel_tol=1e-9, abs_tol=1e-15):
        in_len, in_inv = np.unique(p, return_inverse=True)
        out_len, out_inv = np.unique(c, return_inverse=True)
        in_cost = np.array([_calc(model, provider, int(x), 0, context, when) for x in in_len])
        out_cost = np.array([_calc(model, provider, 0, int(y), context, when) for y in out_len])
        return float(np.mean(in_cost[np.ravel(in_inv)] + out_cost[np.ravel(out_inv)]))
    pairs, inverse = np.unique(np.stack([p, c], axis=1), axis=0, return_inverse=True)
    cost = np.array([_calc(model, provider, int(a), int(b), context, when) for a, b in pairs])
    return float(np.mean(cost[np.ravel(inverse)]))
