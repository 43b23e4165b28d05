"""ServeConfig is the one place for the server's defaults: the CLI, LocalServer, the engine and the
scheduler all read it, and a bad value is a clear error, never silently adjusted."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from typer.testing import CliRunner

from tradeoffs.cli import app
from tradeoffs.serve import LocalServer, ServeConfig
from tradeoffs.serve.config import flag


def test_every_serve_option_defaults_to_its_config_field():
    import typer.main

    command = typer.main.get_command(app).commands["serve"]
    options = {p.name: p for p in command.params}
    for f in dataclasses.fields(ServeConfig):
        assert f.name in options, f"tradeoffs serve has no option for ServeConfig.{f.name}"
        assert options[f.name].default == f.default, (f.name, options[f.name].default, f.default)
    assert set(options) - {f.name for f in dataclasses.fields(ServeConfig)} <= {"help"}


def test_engine_and_scheduler_defaults_are_the_configs():
    from tradeoffs.serve.engine import BatchEngine
    from tradeoffs.serve.scheduler import Scheduler

    engine = inspect.signature(BatchEngine.__init__).parameters
    scheduler = inspect.signature(Scheduler.__init__).parameters
    config = ServeConfig()
    assert engine["max_batch_size"].default == config.max_batch_size
    assert engine["max_step_tokens"].default == config.max_step_tokens
    assert engine["prefix_cache"].default == config.prefix_cache
    assert scheduler["max_wait_ms"].default == config.max_wait_ms
    assert scheduler["max_queue"].default == config.max_queue


def test_local_server_passes_its_whole_config_to_the_command_line():
    srv = LocalServer(max_batch_size=3, max_wait_ms=0.5, embedder=False, threads=1, port=4321)
    cmd = srv.command()
    for name, value in (("max_batch_size", "3"), ("max_wait_ms", "0.5"), ("threads", "1"), ("port", "4321"),
                        ("log_level", "warning")):
        assert cmd[cmd.index(flag(name)) + 1] == value, (name, cmd)
    assert "--no-embedder" in cmd and "--prefix-cache" in cmd


@pytest.mark.parametrize("fields, message", [
    ({"max_batch_size": 0}, "--max-batch-size must be >= 1"),
    ({"max_wait_ms": -1}, "--max-wait-ms must be >= 0"),
    ({"max_batch_size": 64, "max_step_tokens": 32}, "--max-step-tokens \\(32\\) must exceed --max-batch-size"),
    ({"grace_period": -2}, "--grace-period must be >= 0"),
    ({"log_level": "loud"}, "--log-level"),
    ({"dtype": "float16"}, "--dtype must be one of auto, float32, bfloat16, got 'float16'"),
])
def test_bad_values_are_refused_with_the_flag_named(fields, message):
    with pytest.raises(ValueError, match=message):
        ServeConfig(**fields)
    with pytest.raises(ValueError, match=message):
        LocalServer(**fields)


def test_the_cli_refuses_an_inconsistent_config_before_loading_anything():
    result = CliRunner().invoke(app, ["serve", "--max-batch-size", "64", "--max-step-tokens", "32"])
    assert result.exit_code == 2
    assert "--max-step-tokens (32) must exceed --max-batch-size (64)" in result.output


AMX_CPU = "processor : 0\nflags : fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
OLD_CPU = "processor : 0\nflags : fpu sse2 avx2 fma avx512f\n"


def test_bfloat16_is_chosen_only_where_the_cpu_supports_it():
    from tradeoffs.serve.config import cpu_has_native_bf16, resolve_dtype

    assert cpu_has_native_bf16(AMX_CPU) and not cpu_has_native_bf16(OLD_CPU)
    assert resolve_dtype("auto", "cpu", cpuinfo=AMX_CPU) == "bfloat16"
    assert resolve_dtype("auto", "cpu", cpuinfo=OLD_CPU) == "float32"
    assert resolve_dtype("auto", "mps", cpuinfo=AMX_CPU) == "float32"
    # an explicit choice wins either way
    assert resolve_dtype("float32", "cpu", cpuinfo=AMX_CPU) == "float32"
    assert resolve_dtype("bfloat16", "cpu", cpuinfo=OLD_CPU) == "bfloat16"


def test_dtype_and_compile_reach_the_command_line():
    cmd = LocalServer(dtype="float32", compile=True).command()
    assert cmd[cmd.index("--dtype") + 1] == "float32" and "--compile" in cmd
    assert ServeConfig().dtype == "auto" and "--no-compile" in LocalServer().command()
