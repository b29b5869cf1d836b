"""The GPU catalog: well-formed rows, honest sources, and name lookup."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from planner.errors import InputError
from planner.gpus import GPUS_FILE, find_gpu, gpus

REQUIRED = ("h200", "h100-sxm", "h100-pcie", "a100-40gb", "a100-sxm-80gb", "l40s", "l4-", "a10g", "t4",
            "v100-16gb", "v100-32gb", "rtx-3090", "rtx-4090", "rtx-5090", "rtx-6000-ada", "mi300x",
            "mi250", "apple-m")


def test_catalog_has_at_least_20_gpus_with_unique_names():
    names = [g.name for g in gpus()]
    assert len(names) >= 20
    assert len(set(names)) == len(names)
    for frag in REQUIRED:
        assert any(frag in n for n in names), frag


@pytest.mark.parametrize("g", gpus(), ids=lambda g: g.name)
def test_every_row_cites_sources_and_is_plausible(g):
    assert g.source.startswith("https://") and g.memory_source.startswith("https://")
    assert g.memory_basis
    # a program never sees more than the marketed size plus the GB/GiB difference (7.4 %), nor much less
    # than 70 % of it (Apple's default GPU limit is the lowest, about 75 %)
    marketed = g.marketed_memory_gb * 1e9
    assert 0.70 * marketed <= g.memory_bytes <= g.reported_bytes <= marketed * 2**30 / 1e9 + 1


def test_h100_reported_memory_is_the_nvidia_smi_total():
    # nvidia-smi shows 81559 MiB for "NVIDIA H100 80GB HBM3" (cited in assets/gpus.json)
    assert find_gpu("h100-sxm-80gb").reported_bytes == 81559 * 2**20


def test_cuda_total_is_below_the_nvidia_smi_total_and_preferred():
    # vLLM logs total_gpu_memory 79.22GiB on an H100 (vllm-project/vllm PR #10511), nvidia-smi 81559 MiB
    h100 = find_gpu("h100-sxm-80gb")
    assert h100.memory_bytes == h100.cuda_total_bytes == round(79.22 * 1024) * 2**20 < h100.reported_bytes
    for g in gpus():
        if g.cuda_total_bytes:
            assert 0.95 * g.reported_bytes < g.cuda_total_bytes < g.reported_bytes
            assert g.cuda_total_source.startswith("https://")
        else:
            assert g.memory_bytes == g.reported_bytes


def test_assumptions_are_labelled():
    for g in gpus():
        if g.vendor == "apple":
            assert g.memory_is_assumption


@pytest.mark.parametrize("query,name", [("H100-SXM-80GB", "h100-sxm-80gb"), ("4090", "rtx-4090"),
                                        ("h200", "h200-sxm-141gb"), ("NVIDIA L4 24GB", "l4-24gb")])
def test_find_gpu_is_case_insensitive_and_accepts_unique_fragments(query, name):
    assert find_gpu(query).name == name


def test_ambiguous_name_lists_candidates():
    with pytest.raises(InputError, match="ambiguous.*h100-sxm-80gb"):
        find_gpu("h100")


def test_unknown_name_is_one_clear_error():
    with pytest.raises(InputError, match="not in the catalog"):
        find_gpu("voodoo5")


def test_json_file_is_what_the_module_reads():
    assert len(json.loads(GPUS_FILE.read_text())["gpus"]) == len(gpus())


def test_cli_gpus_json(capsys):
    assert main(["gpus", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {g.name for g in gpus()}
    assert all(isinstance(r["memory_bytes"], int) and r["memory_bytes"] <= r["reported_bytes"] for r in rows)


def test_cli_gpus_table(capsys):
    assert main(["gpus"]) == 0
    assert "h100-sxm-80gb" in capsys.readouterr().out
