"""SHA256SUMS covers every shipped data file; loaders refuse corrupted or missing files with a clear fix."""

from __future__ import annotations

import re
import shutil

import pytest

from tradeoffs import data


def test_shipped_files_match_the_manifest(root):
    sums = data.verify_checksums(root)
    assert set(sums) == set(data.manifest_files(root))
    assert {data.TICKETS_FILE, data.TRACE_FILE} <= set(sums)
    assert any(rel.startswith("support_tickets/raw/") for rel in sums)


def test_manifest_is_in_sha256sum_format(root):
    lines = (root / data.MANIFEST_NAME).read_text().splitlines()
    assert lines and all(re.fullmatch(r"[0-9a-f]{64}  \S+", line) for line in lines)
    assert [line.split("  ")[1] for line in lines] == sorted(data.read_manifest(root))


def test_datasets_dir_finds_the_repo_folder(root):
    assert (root / "support_tickets").is_dir() and (root / data.MANIFEST_NAME).exists()


def test_datasets_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATASETS_ENV, str(tmp_path))
    assert data.datasets_dir() == tmp_path.resolve()
    monkeypatch.setenv(data.DATASETS_ENV, str(tmp_path / "nope"))
    with pytest.raises(data.DatasetError, match="is not a directory"):
        data.datasets_dir()


def _corrupt(path):
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(blob))


def test_corrupted_tickets_file_names_the_file_and_the_fix(data_copy):
    _corrupt(data_copy / data.TICKETS_FILE)
    with pytest.raises(data.DatasetError) as info:
        data.load_tickets(root=data_copy)
    msg = str(info.value)
    assert "datasets/support_tickets/tickets.csv" in msg and "corrupted" in msg
    assert "git checkout -- datasets/support_tickets/tickets.csv" in msg
    assert "python -m tradeoffs.data rebuild" in msg


def test_corrupted_trace_and_missing_trace(data_copy):
    _corrupt(data_copy / data.TRACE_FILE)
    with pytest.raises(data.DatasetError, match=r"datasets/traffic/trace\.csv is corrupted"):
        data.load_trace(root=data_copy)
    (data_copy / data.TRACE_FILE).unlink()
    with pytest.raises(data.DatasetError, match=r"datasets/traffic/trace\.csv is missing.*git checkout"):
        data.load_trace(root=data_copy)


def test_verify_checksums_lists_every_problem(data_copy):
    raw = sorted((data_copy / "support_tickets" / "raw").glob("*.jsonl"))[0]
    _corrupt(raw)
    (data_copy / data.TRACE_FILE).unlink()
    (data_copy / "support_tickets" / "raw" / "extra.jsonl").write_text("{}\n")
    with pytest.raises(data.DatasetError) as info:
        data.verify_checksums(data_copy)
    msg = str(info.value)
    assert msg.startswith("3 dataset problem(s)")
    assert f"support_tickets/raw/{raw.name} is corrupted" in msg
    assert "traffic/trace.csv is missing" in msg
    assert "support_tickets/raw/extra.jsonl is not listed" in msg


def test_missing_or_malformed_manifest(data_copy):
    manifest = data_copy / data.MANIFEST_NAME
    manifest.write_text("not a checksum line\n")
    with pytest.raises(data.DatasetError, match="line 1 is not"):
        data.load_tickets(root=data_copy)
    manifest.unlink()
    with pytest.raises(data.DatasetError, match=r"SHA256SUMS is missing.*git checkout -- datasets/SHA256SUMS"):
        data.load_tickets(root=data_copy)


def test_unlisted_file_cannot_be_loaded(data_copy):
    manifest = data_copy / data.MANIFEST_NAME
    kept = [l for l in manifest.read_text().splitlines() if not l.endswith(data.TRACE_FILE)]
    manifest.write_text("\n".join(kept) + "\n")
    with pytest.raises(data.DatasetError, match="is not listed in datasets/SHA256SUMS"):
        data.load_trace(root=data_copy)


def test_verify_false_skips_the_checksum_but_not_the_schema(data_copy):
    path = data_copy / data.TICKETS_FILE
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("customer_tier", "tier", 1), encoding="utf-8")
    with pytest.raises(data.DatasetError, match="expected columns"):
        data.load_tickets(root=data_copy, verify=False)
    path.write_text(text.replace(",billing,", ",billling,", 1), encoding="utf-8")
    with pytest.raises(data.DatasetError, match="'intent' has values outside"):
        data.load_tickets(root=data_copy, verify=False)


def test_write_manifest_round_trip(data_copy, root):
    before = (data_copy / data.MANIFEST_NAME).read_bytes()
    (data_copy / data.MANIFEST_NAME).unlink()
    data.write_manifest(data_copy)
    assert (data_copy / data.MANIFEST_NAME).read_bytes() == before
    assert set(data.verify_checksums(data_copy)) == set(data.read_manifest(root))
    tickets = data_copy / data.TICKETS_FILE
    tickets.write_bytes(tickets.read_bytes() + b"\n")  # a harmless change: a trailing blank line
    with pytest.raises(data.DatasetError):
        data.load_tickets(root=data_copy)
    data.write_manifest(data_copy)  # accepting a change on purpose = rewriting the manifest
    assert len(data.load_tickets(root=data_copy)) > 0


def test_cli_verify_reports_and_fails_cleanly(data_copy, monkeypatch, capsys):
    monkeypatch.setenv(data.DATASETS_ENV, str(data_copy))
    assert data.main(["verify"]) == 0
    assert "ok " in capsys.readouterr().out
    shutil.copy(data_copy / data.TRACE_FILE, data_copy / data.TICKETS_FILE)
    assert data.main(["verify"]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "support_tickets/tickets.csv is corrupted" in err
