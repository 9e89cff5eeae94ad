"""Servers secondtry starts itself (backend.launch): ports, health, logs, stopping, restarts, several GPUs and
the adapter API; against the real `transformers serve` on the tiny model, and a scripted vLLM (tests/backends/
scripted_vllm.py) where vLLM's adapter endpoints are needed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from secondtry.backends import BACKENDS
from secondtry.backends.openai import OpenAISampler
from secondtry.backends.servers import Launcher, ServerError, adapter_name, group_alive, lora_rank
from secondtry.config import ConfigError, SamplingConfig, build_config
from secondtry.loop import check_names
from secondtry.types import Message

pytestmark = pytest.mark.integration  # model servers as processes

SCRIPTED = Path(__file__).with_name("scripted_vllm.py")
CONVS = [[Message("user", e)] for e in ["4+5+2-9", "1+2", "9-3+7+1", "2+2+2", "8-1", "3+3-2"]]
GREEDY = SamplingConfig(temperature=0, max_new_tokens=40)
SERVE = "transformers serve {model} --host {host} --port {port} --device cpu --dtype float32"


def cfg(model, tmp_path, **backend):
    return build_config(
        {
            "name": "t",
            "run_dir": str(tmp_path),
            "model": {"path": str(model)},
            "train_task": {"name": "synthetic"},
            "eval_task": {"name": "synthetic"},
            "evaluation": {"select_on": "test"},
            "backend": {"name": "openai", "launch_env": {"OMP_NUM_THREADS": "1"}, **backend},
        }
    )


def scripted(*flags: str) -> str:
    return f"{sys.executable} {SCRIPTED} --model {{model}} --port {{port}} " + " ".join(flags)


@pytest.fixture(scope="module")
def hf_reference(tiny_model, tmp_path_factory):
    hf = BACKENDS["hf"](
        str(tiny_model),
        build_config(
            {
                "name": "r",
                "model": {"path": str(tiny_model)},
                "train_task": {"name": "synthetic"},
                "eval_task": {"name": "synthetic"},
                "evaluation": {"select_on": "test"},
                "backend": {"device": "cpu"},
            }
        ),
    )
    out = hf.generate(CONVS, GREEDY)
    hf.close()
    return [[c.text] for c in (row[0] for row in out)]


# ----------------------------------------------------------------------------- config


def test_launch_config_errors_name_the_key_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"backend.launch must pass \{port\}"):
        cfg("m", tmp_path, launch="vllm serve {model}")
    with pytest.raises(ConfigError, match=r"unknown placeholder\(s\) \{gpu\}; known: \{model\}"):
        cfg("m", tmp_path, launch="vllm serve {model} --port {port} --device {gpu}")
    with pytest.raises(ConfigError, match="drop backend.endpoints"):
        cfg("m", tmp_path, launch="vllm serve {model} --port {port}", endpoints=["http://127.0.0.1:1/v1"])
    with pytest.raises(ConfigError, match="backend.lora: loading adapters needs vLLM's or SGLang's"):
        cfg("m", tmp_path, launch=SERVE, server="transformers", lora=True)
    base = {
        "name": "t",
        "model": {"path": "m"},
        "train_task": {"name": "synthetic"},
        "eval_task": {"name": "synthetic"},
        "evaluation": {"select_on": "test"},
    }
    with pytest.raises(ConfigError, match="backend.lora: .* set training.merge=false"):
        build_config(
            {
                **base,
                "backend": {"name": "openai", "launch": "vllm serve {model} --port {port}", "lora": True},
            }
        )
    with pytest.raises(ConfigError, match="training.merge=false leaves .* set backend.lora=true"):
        build_config(
            {
                **base,
                "backend": {"name": "openai", "endpoints": ["http://127.0.0.1:1/v1"]},
                "training": {"merge": False},
            }
        )
    launch = "vllm serve {model} --port {port} --max-lora-rank {lora_rank}"
    ok = build_config(
        {
            **base,
            "backend": {"name": "openai", "launch": launch, "lora": True},
            "training": {"merge": False, "rank": 16},
            "stopping": {"max_rounds": 3},
        }
    )
    assert lora_rank(ok) == 64  # three rounds of rank 16 stack to 48, and vLLM takes 64
    with pytest.raises(ServerError, match="'no-such-server' is not an executable on PATH"):
        Launcher(cfg("m", tmp_path, launch="no-such-server --port {port}")).serve("m")
    with pytest.raises(ConfigError, match="backend.launch: 'no-such-server' is not an executable"):
        check_names(cfg("m", tmp_path, launch="no-such-server --port {port}"))  # secondtry validate too
    env = cfg("m", tmp_path, launch=SERVE, launch_env={"A": 1, "B": True}).backend.launch_env
    assert env == {"A": "1", "B": "True"}


def test_servers_are_placed_one_per_gpu_and_shared_out_by_local_rank(tmp_path, monkeypatch):
    launcher = Launcher(cfg("m", tmp_path, launch=scripted(), launch_per_gpu=True))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    assert launcher.gpus() == ["4", "5", "6"]
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launcher.gpus() == ["5"]
    one = Launcher(cfg("m", tmp_path, launch=scripted()))
    assert one.gpus() == ["5"]  # one server per process, on that process's GPUs
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ServerError, match="backend.launch_per_gpu: no GPU visible"):
        launcher.gpus()


# ----------------------------------------------------------------------------- a scripted server (fast)


def test_a_stage_starts_its_server_on_a_free_port_logs_it_and_stops_it(tmp_path, processes):
    launcher = Launcher(cfg("m", tmp_path, launch=scripted("--echo")))
    launcher.begin_stage("round_1/attempts")
    smp = OpenAISampler("m", cfg("m", tmp_path, launch=scripted("--echo")), servers=launcher)
    out = smp.generate(CONVS[:2], GREEDY, n=2, seed=3)
    assert out[0][0].text.startswith("4+5+2-9|model=m|seed=")
    (server,) = launcher.servers
    log = tmp_path / "t" / "logs" / "server-round_1-attempts.log"
    assert server.log_path == log and f"on port {server.port}" in log.read_text()
    assert "scripted vLLM serving m" in log.read_text() and "POST /v1/chat/completions" in log.read_text()
    pid = server.proc.pid
    launcher.end_stage()
    assert not launcher.servers and not processes.alive(pid) and not group_alive(pid)
    assert "stopping (SIGTERM to the process group)" in log.read_text()
    launcher.begin_stage("round_1/eval")  # the next stage: a new server, a new log
    smp.generate(CONVS[:1], GREEDY)
    assert launcher.servers[0].log_path.name == "server-round_1-eval.log"
    launcher.stop()


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, processes):
    launcher = Launcher(cfg("m", tmp_path, launch=scripted("--echo", "--ignore-sigterm"), launch_grace_s=1.0))
    (server,) = launcher.serve("m")
    start = time.monotonic()
    launcher.stop()
    assert 1.0 <= time.monotonic() - start < 8 and not processes.alive(server.proc.pid)
    text = server.log_path.read_text()
    assert "SIGTERM ignored" in text
    assert "still running 1 s after SIGTERM (backend.launch_grace_s): SIGKILL" in text


def test_a_command_that_exits_at_once_fails_with_its_log(tmp_path):
    crash = f"{sys.executable} -c \"import sys; print('cannot open model {{model}}'); sys.exit(3)\" {{port}}"
    start = time.monotonic()
    with pytest.raises(
        ServerError,
        match=r"(?s)exited with code 3 before answering.*server-run.log, ends:\n"
        r".*cannot open model m",
    ):
        Launcher(cfg("m", tmp_path, launch=crash)).serve("m")
    assert time.monotonic() - start < 30


def test_a_second_death_in_a_stage_is_an_error_naming_the_log(tmp_path):
    c = cfg("m", tmp_path, launch=scripted("--echo", "--die-after", "3"), concurrency=1)
    launcher = Launcher(c)
    launcher.begin_stage("round_2/eval")
    smp = OpenAISampler("m", c, servers=launcher)
    out = smp.generate(CONVS[:4], GREEDY)  # dies after 3 answers, is started again, answers the 4th
    assert [row[0].text.split("|")[0] for row in out] == [c[0].content for c in CONVS[:4]]
    assert smp.restarts == 1 and launcher.servers[0].starts == 2
    log = launcher.servers[0].log_path
    died = rf"(?s)round_2/eval .* died again, exit code 3.*{re.escape(str(log))}, ends:"
    with pytest.raises(ServerError, match=died):
        smp.generate(CONVS, GREEDY)  # three more answers, a second death
    assert not launcher.servers and "the server exited with code 3" in log.read_text()
    launcher.begin_stage("round_3/attempts")  # a new stage: a server may die once again
    assert len(smp.generate(CONVS[:4], GREEDY)) == 4 and smp.restarts == 2
    launcher.stop()


def test_killing_secondtry_stops_its_server(tmp_path, processes):
    """secondtry SIGKILLed: its server is sent SIGTERM by the kernel (the launch shim's PR_SET_PDEATHSIG)."""
    pid_file = tmp_path / "pid"
    script = textwrap.dedent(f"""
        import sys, time
        from secondtry.backends.servers import Launcher
        from secondtry.config import build_config
        c = build_config({{"name": "t", "run_dir": {str(tmp_path)!r}, "model": {{"path": "m"}},
                           "train_task": {{"name": "synthetic"}}, "eval_task": {{"name": "synthetic"}},
                           "evaluation": {{"select_on": "test"}},
                           "backend": {{"name": "openai", "launch": {scripted("--echo")!r}}}}})
        (server,) = Launcher(c).serve("m")
        open({str(pid_file)!r}, "w").write(str(server.proc.pid))
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            assert parent.poll() is None
            time.sleep(0.1)
        pid = int(pid_file.read_text())
        assert processes.alive(pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 15
        while processes.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not processes.alive(pid)
    finally:
        if parent.poll() is None:
            parent.kill()


# ----------------------------------------------------------------------------- adapters (scripted vLLM)


def write_adapter(folder: Path, base: str, rank: int = 8) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(
        json.dumps({"r": rank, "lora_alpha": 16, "base_model_name_or_path": base})
    )
    (folder / "adapter_model.safetensors").write_bytes(os.urandom(64))
    return folder


def lora_cfg(tmp_path, launch):
    return build_config(
        {
            "name": "t",
            "run_dir": str(tmp_path),
            "model": {"path": "base-m"},
            "train_task": {"name": "synthetic"},
            "eval_task": {"name": "synthetic"},
            "evaluation": {"select_on": "test"},
            "training": {"merge": False},
            "backend": {"name": "openai", "server": "vllm", "lora": True, "launch": launch},
        }
    )


def test_each_rounds_adapter_is_loaded_named_in_requests_and_unloaded(tmp_path):
    record = tmp_path / "events.jsonl"
    c = lora_cfg(
        tmp_path,
        scripted("--echo", "--enable-lora", "--max-lora-rank", "{lora_rank}", "--record", str(record)),
    )
    launcher = Launcher(c)
    launcher.begin_stage("round_0/eval")
    base = OpenAISampler("base-m", c, servers=launcher)
    assert base.generate(CONVS[:1], GREEDY)[0][0].text.startswith("4+5+2-9|model=base-m|")
    base.close()
    (server,) = launcher.servers
    launcher.end_stage()
    assert launcher.servers == [server]  # with backend.lora the base model's server stays for the run
    one = write_adapter(tmp_path / "t" / "round_1" / "model", "base-m")
    launcher.begin_stage("round_1/eval")
    smp = OpenAISampler(str(one), c, servers=launcher)
    name = adapter_name(str(one))
    assert name.startswith("round_1-") and smp.model_name == name
    assert smp.generate(CONVS[:2], GREEDY)[1][0].text == f"1+2|model={name}|seed={smp_seed(CONVS, 1)}"
    smp.generate(CONVS[:1], GREEDY)  # loaded once per server start
    server.proc.send_signal(signal.SIGKILL)  # a restarted server has lost it: loaded again
    server.proc.wait()
    smp.generate(CONVS[:1], GREEDY)
    smp.close()
    launcher.stop()
    events = [json.loads(line) for line in record.read_text().splitlines()]
    loads = [e for e in events if e["event"] == "load"]
    assert [(e["name"], e["path"], e["rank"]) for e in loads] == [(name, str(one.resolve()), 8)] * 2
    assert len({e["pid"] for e in loads}) == 2  # the second into the restarted server
    assert {e["model"] for e in events if e["event"] == "request"} == {"base-m", name}
    assert [e["name"] for e in events if e["event"] == "unload"] == [name]
    assert "--max-lora-rank 64" in server.log_path.read_text()  # 3 rounds x rank 16, as vLLM takes it


def smp_seed(convs, i, seed=0):
    from secondtry.backends.hf import row_seed

    return row_seed(seed, str(i), 0)


def test_an_adapter_the_server_refuses_is_a_clear_error(tmp_path):
    c = lora_cfg(tmp_path, scripted("--echo", "--enable-lora", "--max-lora-rank", "8"))
    big = write_adapter(tmp_path / "t" / "round_1" / "model", "base-m", rank=32)
    smp = OpenAISampler(str(big), c)
    refused = (
        r"refused to load adapter round_1-\w+ .*HTTP 400: .*LoRA rank 32 is greater than "
        r"max_lora_rank 8.*--max-lora-rank \{lora_rank\}"
    )
    with pytest.raises(ServerError, match=refused):
        smp.generate(CONVS[:1], GREEDY)
    smp.close()
    no_lora = OpenAISampler(str(big), lora_cfg(tmp_path, scripted("--echo")))  # started without --enable-lora
    with pytest.raises(ServerError, match="HTTP 404.*needs --enable-lora.*VLLM_ALLOW_RUNTIME_LORA_UPDATING"):
        no_lora.generate(CONVS[:1], GREEDY)
    no_lora.close()


# ----------------------------------------------------------------------------- the real transformers serve


def test_a_killed_transformers_serve_is_started_again_and_the_stage_finishes(
    tiny_model, tmp_path, hf_reference, processes
):
    c = cfg(tiny_model, tmp_path, launch=SERVE, server="transformers", concurrency=1)
    launcher = Launcher(c)
    launcher.begin_stage("round_1/attempts")
    smp = OpenAISampler(str(tiny_model), c, servers=launcher)
    smp.endpoints()  # started and answering
    (server,) = launcher.servers
    first_pid = server.proc.pid

    def kill_after(answers: int) -> None:  # SIGKILL the server's whole process group mid-call
        deadline = time.monotonic() + 300
        while server.log_path.read_text().count("POST /v1/chat/completions") < answers:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        os.killpg(first_pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_after, args=(2,))
    killer.start()
    out = smp.generate(CONVS, GREEDY)
    killer.join()
    assert [[row[0].text] for row in out] == hf_reference  # every conversation answered, as without the kill
    assert smp.restarts == 1 and server.starts == 2 and server.proc.pid != first_pid
    assert "the server exited with code -9" in server.log_path.read_text()
    launcher.end_stage()
    assert not processes.alive(first_pid) and not processes.alive(server.proc.pid)
    assert not processes.serving(str(tiny_model))


def test_a_transformers_serve_that_never_answers_fails_within_its_timeout_with_its_log(
    tiny_model, tmp_path, processes
):
    # listening on another loopback address than the one secondtry asks: it never answers there
    wrong = SERVE.replace("{host}", "127.0.0.2")
    launcher = Launcher(
        cfg(tiny_model, tmp_path, launch=wrong, server="transformers", launch_timeout_s=6, launch_grace_s=5)
    )
    start = time.monotonic()
    with pytest.raises(ServerError) as e:
        launcher.serve(str(tiny_model))
    took = time.monotonic() - start
    assert 6 <= took < 6 + 5 + 5  # the timeout, then at most the grace period to stop it
    log = tmp_path / "t" / "logs" / "server-run.log"
    message = str(e.value)
    assert "did not answer at http://127.0.0.1:" in message
    assert "within backend.launch_timeout_s=6 s" in message
    assert f"Its log, {log}, ends:" in message and "--host 127.0.0.2" in message  # the tail shows the command
    assert not launcher.pids or not any(processes.alive(p) for p in launcher.pids)
    assert not processes.serving(str(tiny_model))


def test_two_transformers_serves_on_two_ports_share_a_stage(
    tiny_model, tmp_path, hf_reference, monkeypatch, processes
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # two "GPUs": each server runs on the CPU, told its own
    c = cfg(tiny_model, tmp_path, launch=SERVE, server="transformers", launch_per_gpu=True, concurrency=1)
    launcher = Launcher(c)
    launcher.begin_stage("round_0/eval")
    smp = OpenAISampler(str(tiny_model), c, servers=launcher)
    out = smp.generate(CONVS, GREEDY, n=2)
    assert [[row[0].text] for row in out] == hf_reference and all(row[0] == row[1] for row in out)
    a, b = launcher.servers
    assert a.port != b.port and (a.gpu, b.gpu) == ("0", "1")
    assert [s.log_path.name for s in (a, b)] == [f"server-round_0-eval-gpu{g}.log" for g in (0, 1)]
    for s in (a, b):
        env = Path(f"/proc/{s.proc.pid}/environ").read_bytes().split(b"\0")
        assert f"CUDA_VISIBLE_DEVICES={s.gpu}".encode() in env
    assert smp.sent[a.url] > 0 and smp.sent[b.url] > 0 and smp.sent[a.url] + smp.sent[b.url] == 12
    pids = [a.proc.pid, b.proc.pid]
    launcher.end_stage()
    assert not any(processes.alive(p) for p in pids) and not processes.serving(str(tiny_model))
