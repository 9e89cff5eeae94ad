"""The openai backend against a real `transformers serve` (started here, on loopback, with the tiny model)
and against a scripted fake server for retries, backoff, timeouts and load spreading."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from secondtry.backends import BACKENDS
from secondtry.backends.hf import row_seed
from secondtry.backends.openai import EndpointError, OpenAISampler, request_params
from secondtry.config import ConfigError, SamplingConfig, build_config
from secondtry.models import ModelLoadError
from secondtry.types import Message

CONVS = [[Message("user", e)] for e in ["4+5+2-9", "1+2", "9-3+7+1", "2+2+2"]]
GREEDY = SamplingConfig(temperature=0, max_new_tokens=40)


def cfg(model, **backend):
    return build_config(
        {
            "name": "t",
            "model": {"path": str(model)},
            "train_task": {"name": "synthetic"},
            "eval_task": {"name": "synthetic", "split": "test"},
            "evaluation": {"select_on": "test"},
            "backend": {"name": "openai", **backend},
        }
    )


def texts(outs):
    return [[c.text for c in row] for row in outs]


# ----------------------------------------------------------------------------- a scripted fake server


class FakeServer:
    """OpenAI-compatible, in a thread. `plan(k, body)` -> (status, delay_s, headers) for the k-th request;
    status "drop" closes the connection without an answer. A 200 echoes the prompt and the seed it got."""

    def __init__(self, plan=lambda k, body: (200, 0.0, {}), choices=None):
        self.requests: list[dict] = []  # {"t", "path", "body", "auth"}
        self.lock = threading.Lock()
        self.active = self.peak = 0  # requests being answered now, and the most at once
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    k = len(server.requests)
                    server.requests.append(
                        {
                            "t": time.monotonic(),
                            "path": self.path,
                            "body": body,
                            "auth": self.headers.get("Authorization"),
                        }
                    )
                    server.active += 1
                    server.peak = max(server.peak, server.active)
                status, delay, headers = plan(k, body)
                time.sleep(delay)
                with server.lock:
                    server.active -= 1
                if status == "drop":
                    self.close_connection = True
                    return
                payload = server.answer(body, choices) if status == 200 else {"detail": f"scripted {status}"}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()  # quick shutdown

    @staticmethod
    def answer(body, choices):
        chat = "messages" in body
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        n = body.get("n", 1) if choices is None else choices
        out = []
        for i in range(n):
            text = f"{prompt}|seed={body['seed']}|{i}"
            tokens = [{"token": "t", "logprob": 0.0}] * (5 + i)
            choice = {"index": i, "finish_reason": "stop"}
            if chat:
                choice |= {"message": {"role": "assistant", "content": text}}
                choice |= {"logprobs": {"content": tokens}} if body.get("logprobs") else {}
            else:
                choice |= {"text": text}
                choice |= (
                    {"logprobs": {"tokens": ["t"] * (5 + i)}} if body.get("logprobs") is not None else {}
                )
            out.append(choice)
        return {
            "id": "x",
            "object": "chat.completion" if chat else "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": out,
            "usage": {"prompt_tokens": 3, "completion_tokens": 7 * n, "total_tokens": 3 + 7 * n},
        }

    def times(self):
        return [r["t"] for r in self.requests]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    made = []

    def make(*args, **kwargs):
        made.append(FakeServer(*args, **kwargs))
        return made[-1]

    yield make
    for s in made:
        s.close()


def sampler(*servers_, model="m", **backend):
    backend = {"endpoints": [s.url for s in servers_], "retry_backoff_s": 0.05, **backend}
    return OpenAISampler(model, cfg(model, **backend))


def test_each_sample_is_one_seeded_request_and_comes_back_in_place(servers):
    s = servers()
    seen = []
    out = sampler(s).generate(
        CONVS,
        SamplingConfig(temperature=0.8, max_new_tokens=9),
        n=2,
        seed=7,
        keys=["a", "b", "c", "d"],
        progress=seen.append,
    )
    assert texts(out) == [
        [f"{c[0].content}|seed={row_seed(7, k, j)}|0" for j in range(2)] for c, k in zip(CONVS, "abcd")
    ]
    assert sum(seen) == 8 and len(s.requests) == 8
    body = s.requests[0]["body"]
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_k"]) == ("m", 9, 0.8, -1)
    assert "n" not in body and s.requests[0]["path"] == "/v1/chat/completions"
    assert out[0][0].n_tokens == 7 and out[0][0].prompt_tokens == 3 and out[0][0].finish_reason == "stop"


def test_n_in_one_request_counts_each_choice_from_its_logprobs(servers):
    s = servers()
    out = sampler(s, n_in_request=True).generate(CONVS[:2], GREEDY, n=3, seed=1)
    assert (
        len(s.requests) == 2 and s.requests[0]["body"]["n"] == 3 and s.requests[0]["body"]["logprobs"] is True
    )
    assert [c.n_tokens for c in out[0]] == [5, 6, 7]
    assert texts(out)[1] == [f"1+2|seed={row_seed(1, '1', 0)}|{i}" for i in range(3)]
    one = servers(choices=1)  # a server that ignores `n`
    with pytest.raises(
        EndpointError, match=f"{one.url} answered 1 choices for a request of 3.*n_in_request=false"
    ):
        sampler(one, n_in_request=True).generate(CONVS[:1], GREEDY, n=3)


def test_429_and_5xx_are_retried_after_the_backoff_or_retry_after(servers):
    script = {0: (429, 0.0, {"Retry-After": "0.4"}), 1: (503, 0.0, {}), 2: (500, 0.0, {})}
    s = servers(lambda k, body: script.get(k, (200, 0.0, {})))
    smp = sampler(s, retry_backoff_s=0.2)
    out = smp.generate(CONVS[:1], GREEDY)
    assert out[0][0].text.startswith("4+5+2-9|seed=") and smp.retries == 3 and len(s.requests) == 4
    gaps = [b - a for a, b in zip(s.times(), s.times()[1:])]
    assert gaps[0] >= 0.4  # the server's Retry-After, longer than the first backoff (0.1-0.2 s)
    assert 0.2 <= gaps[1] < 0.4 + 0.5 and 0.4 <= gaps[2] < 0.8 + 0.5  # b/2..b for b = 0.2 * 2**retry, + slack


def test_a_request_past_the_timeout_is_retried(servers):
    s = servers(lambda k, body: (200, 2.0 if k == 0 else 0.0, {}))
    start = time.monotonic()
    out = sampler(s, request_timeout_s=0.3).generate(CONVS[:1], GREEDY)
    assert out[0][0].text.startswith("4+5+2-9") and len(s.requests) == 2 and time.monotonic() - start < 1.5


def test_concurrency_caps_the_requests_in_flight_per_endpoint(servers):
    a, b = servers(lambda k, body: (200, 0.1, {})), servers(lambda k, body: (200, 0.1, {}))
    sampler(a, b, concurrency=2).generate(CONVS, GREEDY, n=3)
    assert a.peak == b.peak == 2 and len(a.requests) + len(b.requests) == 12


def test_requests_go_to_the_least_busy_endpoint(servers):
    slow, fast = servers(lambda k, b: (200, 0.25, {})), servers(lambda k, b: (200, 0.02, {}))
    smp = sampler(slow, fast, concurrency=1)
    out = smp.generate(CONVS, GREEDY, n=4)
    assert all(len(row) == 4 for row in out)
    assert smp.sent == {slow.url: len(slow.requests), fast.url: len(fast.requests)}
    assert 1 <= len(slow.requests) <= 4 and len(fast.requests) >= 12  # round robin would give 8 and 8


def test_a_dead_endpoints_share_moves_to_the_others(servers):
    dead, alive = servers(lambda k, b: (500, 0.0, {})), servers()
    out = sampler(dead, alive, concurrency=2).generate(CONVS, GREEDY, n=2)
    assert (
        all(c.text for row in out for c in row) and len(alive.requests) == 8 and 1 <= len(dead.requests) <= 5
    )


def test_running_out_of_retries_names_the_endpoint_and_what_it_said(servers):
    s = servers(lambda k, b: (503, 0.0, {}))
    with pytest.raises(
        EndpointError, match=rf"failed 3 times, last at {s.url}: HTTP 503.*not kept.*resuming"
    ):
        sampler(s, max_retries=2).generate(CONVS[:1], GREEDY)
    assert len(s.requests) == 3


def test_a_server_dying_mid_call_fails_the_call_cleanly(servers):
    s = servers(lambda k, b: (200, 0.0, {}) if k < 3 else ("drop", 0.0, {}))
    with pytest.raises(EndpointError, match=rf"{s.url}: connection failed.*not kept"):
        sampler(s, max_retries=1, concurrency=1).generate(CONVS, GREEDY, n=2)


def test_a_rejected_request_fails_at_once_with_a_hint(servers):
    s = servers(lambda k, b: (422, 0.0, {}))
    with pytest.raises(
        EndpointError, match=rf"{s.url} refused conversation 0, sample 0: HTTP 422.*backend.server"
    ):
        sampler(s).generate(CONVS[:1], GREEDY)
    assert len(s.requests) == 1


def test_an_error_in_the_progress_callback_ends_the_call(servers):
    def boom(k):
        raise RuntimeError("progress broke")

    with pytest.raises(RuntimeError, match="progress broke"):
        sampler(servers()).generate(CONVS, GREEDY, progress=boom)


def test_the_key_comes_from_the_named_environment_variable(servers, monkeypatch):
    s = servers()
    with pytest.raises(ValueError, match="backend.api_key_env=ST_KEY.*export ST_KEY=<key>"):
        sampler(s, api_key_env="ST_KEY")
    monkeypatch.setenv("ST_KEY", "sekrit")
    sampler(s, api_key_env="ST_KEY").generate(CONVS[:1], GREEDY)
    assert s.requests[-1]["auth"] == "Bearer sekrit"


# ----------------------------------------------------------------------------- config and parameters


def test_request_parameters_per_server():
    hot = SamplingConfig(temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=5)
    kw, extra = request_params(hot, server="vllm", api="chat", count=1, seed=3, chat_template_kwargs={"a": 1})
    assert kw == {"max_tokens": 5, "seed": 3, "temperature": 0.7, "top_p": 0.9}
    assert extra == {"top_k": -1, "chat_template_kwargs": {"a": 1}}
    kw, extra = request_params(
        hot, server="transformers", api="completions", count=1, seed=3, chat_template_kwargs={}
    )
    assert "temperature" not in kw and json.loads(extra["generation_config"]) == {
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 0,
    }
    _, extra = request_params(
        GREEDY, server="transformers", api="chat", count=1, seed=3, chat_template_kwargs={}
    )
    assert json.loads(extra["generation_config"]) == {"do_sample": False}
    kw, extra = request_params(
        hot, server="openai", api="completions", count=2, seed=3, chat_template_kwargs={}
    )
    assert extra == {} and kw["n"] == 2 and kw["logprobs"] == 0


def test_config_errors_name_the_key_and_the_fix(servers):
    with pytest.raises(
        ConfigError,
        match=r"backend: the openai backend needs at least one server: set "
        r"backend.endpoints, e.g. backend.endpoints=\[http://127.0.0.1:8000/v1\]",
    ):
        build_config(
            {
                "name": "t",
                "model": {"path": "m"},
                "train_task": {"name": "synthetic"},
                "eval_task": {"name": "synthetic"},
                "evaluation": {"select_on": "test"},
                "backend": {"name": "openai"},
            }
        )
    with pytest.raises(ConfigError, match="must be a base URL like http://"):
        cfg("m", endpoints=["127.0.0.1:8000/v1"])
    s = servers()
    pinned = cfg("base", endpoints=[s.url], model_name="served")
    with pytest.raises(ModelLoadError, match="samples runs/x/model, but backend.model_name=served pins"):
        OpenAISampler("runs/x/model", pinned)
    with pytest.raises(ValueError, match="sampling.top_k=4 cannot be sent to backend.server=openai"):
        sampler(s, server="openai").generate(CONVS[:1], SamplingConfig(top_k=4))
    with pytest.raises(ValueError, match="transformers serve answers one choice"):
        sampler(s, server="transformers", n_in_request=True)


def test_completions_needs_the_models_tokenizer_and_chat_renders_a_transcript_without_it(tmp_path, servers):
    s = servers()
    with pytest.raises(ModelLoadError, match="backend.api=completions renders prompts here.*model not found"):
        sampler(s, model=str(tmp_path / "missing"), api="completions")
    chat = sampler(s, model="org/some-hub-model")  # chat never asks the hub for a tokenizer
    assert chat.render([Message("user", "hi"), Message("assistant", "yo")]) == "user: hi\n\nassistant: yo"


def test_completions_prompt_drops_a_bos_the_server_adds_itself(servers, monkeypatch):
    class BosTokenizer:  # a template that writes <s>, and a tokenizer that adds it too
        bos_token, bos_token_id = "<s>", 1

        def apply_chat_template(self, messages, **kw):
            return "<s>" + "".join(f"[{m['role']}]{m['content']}" for m in messages)

        def __call__(self, text, **kw):
            return {"input_ids": [1, 9]}

    monkeypatch.setattr("secondtry.backends.openai.load_tokenizer", lambda path: BosTokenizer())
    s = servers()
    sampler(s, api="completions").generate(CONVS[:1], GREEDY)
    assert s.requests[0]["body"]["prompt"] == "[user]4+5+2-9" and s.requests[0]["path"] == "/v1/completions"


# ----------------------------------------------------------------------------- a real transformers serve


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_model, tmp_path_factory):
    """`transformers serve <tiny model>` on loopback, offline; its base URL."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = [
        sys.executable,
        "-m",
        "transformers.cli.transformers",
        "serve",
        str(tiny_model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"transformers serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"transformers serve did not answer /health in 120 s:\n{log_path.read_text()[-3000:]}"
                    )
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def hf_greedy(tiny_model):
    hf = BACKENDS["hf"](str(tiny_model), cfg(tiny_model, name="hf"))
    out = hf.generate(CONVS, GREEDY)
    short = hf.generate(CONVS[:1], SamplingConfig(temperature=0, max_new_tokens=3))
    hf.close()
    return out, short


@pytest.mark.integration
@pytest.mark.parametrize("api", ["chat", "completions"])
def test_greedy_through_transformers_serve_is_the_hf_backends_greedy(api, served, tiny_model, hf_greedy):
    smp = BACKENDS["openai"](
        str(tiny_model), cfg(tiny_model, endpoints=[served], server="transformers", api=api)
    )
    out = smp.generate(CONVS, GREEDY, n=2)
    ref, ref_short = hf_greedy
    assert [[c.text for c in row] for row in out] == [[r[0].text] * 2 for r in ref]
    assert [row[0] for row in out] == [
        r[0] for r in ref
    ]  # text, n_tokens (with the stop token), finish, prompt tokens
    assert any(r[0].finish_reason == "stop" for r in ref)
    short = smp.generate(CONVS[:1], SamplingConfig(temperature=0, max_new_tokens=3))[0][0]
    assert short == ref_short[0][0] and short.finish_reason == "length" and short.n_tokens == 3


@pytest.mark.integration
def test_sampling_through_transformers_serve_is_seeded(served, tiny_model):
    smp = BACKENDS["openai"](
        str(tiny_model), cfg(tiny_model, endpoints=[served], server="transformers", concurrency=1)
    )
    params = SamplingConfig(temperature=1.0, max_new_tokens=20)
    a, b = smp.generate(CONVS[:1], params, n=3, seed=1), smp.generate(CONVS[:1], params, n=3, seed=1)
    c = smp.generate(CONVS[:1], params, n=3, seed=2)
    assert texts(a) == texts(b) and texts(a) != texts(c)
    assert all(len(set(row)) > 1 for row in texts(a))  # with do_sample sent, the samples differ
    # it seeds each request just before generating it, one at a time: requests in flight together as well
    busy = BACKENDS["openai"](
        str(tiny_model), cfg(tiny_model, endpoints=[served], server="transformers", concurrency=4)
    )
    assert texts(busy.generate(CONVS, params, n=2, seed=1)) == texts(smp.generate(CONVS, params, n=2, seed=1))


@pytest.mark.integration
def test_what_transformers_serve_refuses_is_explained(served, tiny_model):
    as_vllm = BACKENDS["openai"](str(tiny_model), cfg(tiny_model, endpoints=[served]))
    with pytest.raises(EndpointError, match=r"HTTP 422: .*Unexpected fields.*top_k.*backend.server=vllm"):
        as_vllm.generate(CONVS[:1], GREEDY)
    plain = BACKENDS["openai"](
        str(tiny_model), cfg(tiny_model, endpoints=[served], server="openai", n_in_request=True)
    )
    with pytest.raises(EndpointError, match="answered 1 choices for a request of 2"):  # it ignores `n`
        plain.generate(CONVS[:1], GREEDY, n=2)
