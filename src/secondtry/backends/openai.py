"""The `openai` backend: any OpenAI-compatible server (vLLM, SGLang, `transformers serve`) over HTTP.

`generate` runs an asyncio loop of its own (the Sampler interface is synchronous). One dispatcher
hands each request to the endpoint with the fewest requests in flight, at most
`backend.concurrency` each, so a faster server takes a larger share. A 429, a 5xx, a timeout or
a lost connection is retried, up to `backend.max_retries` times, after an exponential backoff
with jitter (or the server's Retry-After, if longer). The endpoint that failed cools down as
long, then gets one request at a time until one succeeds, while healthy endpoints take the
rest: a dead server's share moves to the others. Other errors (a 4xx: a rejected parameter, a
wrong model name or key) fail at once.

When a request fails for good, `generate` cancels the rest and raises `EndpointError`, naming
the endpoint and what it answered. Completions already finished in that call are not returned:
the stage fails whole, and resuming the run redoes it from its first unfinished chunk.

Seeds: sample j of conversation i is sent with the hf backend's row seed of (seed, keys[i], j),
one request per sample, so a sample does not depend on `n` or its neighbours, and reruns repeat
where the server honours per-request seeds. `backend.n_in_request` asks for all n samples in one
request with sample 0's seed instead (fewer requests; vLLM and SGLang honour `n`).

With `backend.launch` the servers are secondtry's (servers.py): each generate call asks the run's
`Launcher` for the servers of its model (started at a stage's first call); a watcher ends the call
as soon as one of them exits, and `generate` starts it again (once per stage) and sends the
requests that had not come back. With `backend.lora` the round's adapter is loaded into every
server first and named in the requests.

Why the `openai` SDK rather than raw HTTP: typed requests, responses and errors (status, timeout,
lost connection) for both endpoints, kept up to date with the API; `transformers serve` depends
on it too. Its own retries are off, so that a retry can move to another endpoint.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, SamplingConfig
from ..log import Log
from ..models import ModelLoadError, adapter_base, load_tokenizer
from ..types import Completion, Message
from .hf import render, row_seed
from .servers import Launcher, ServerDied, adapter_name, load_adapter, request_model, unload_adapter

MAX_BACKOFF_S = 60.0
_RETRY_STATUS = {408, 409, 429}  # and every 5xx


class EndpointError(RuntimeError):
    """A request that failed for good; the message names the endpoint, what it answered and what to do."""


@dataclass(frozen=True)
class _Request:
    conv: int
    samples: tuple[int, ...]  # the sample indices of conversation `conv` this request fills
    seed: int
    failures: tuple[str, ...] = ()  # "endpoint: what happened", one per failed attempt


@dataclass
class _Endpoint:
    url: str
    client: Any
    in_flight: int = 0
    sent: int = 0
    strikes: int = 0  # failures since its last success: while > 0 it gets one request at a time (a probe)
    cooling_until: float = 0.0  # takes no new request before this (loop time), after a failure
    failures: list[str] = field(default_factory=list)


def request_params(
    params: SamplingConfig,
    *,
    server: str,
    api: str,
    count: int,
    seed: int,
    chat_template_kwargs: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(keyword arguments of the SDK's create, extra JSON fields) for one request of `count` samples."""
    kw: dict[str, Any] = {"max_tokens": params.max_new_tokens, "seed": seed}
    extra: dict[str, Any] = {}
    if count > 1:
        kw["n"] = count
        # `usage` sums the choices: each choice's tokens come from its logprobs
        kw.update({"logprobs": True, "top_logprobs": 0} if api == "chat" else {"logprobs": 0})
    if server == "transformers":
        # transformers serve samples only when the generation config says do_sample (a temperature alone
        # is ignored if the model's default is greedy) and rejects top_k as a field of its own
        gen = (
            {"do_sample": False}
            if params.temperature == 0
            else {
                "do_sample": True,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "top_k": params.top_k,
            }
        )
        extra["generation_config"] = json.dumps(gen)
    else:
        kw.update(temperature=params.temperature, top_p=params.top_p)
        if server in ("vllm", "sglang"):
            # sent even when off: unsent, the server takes the model's generation_config default (often 20);
            # -1 is "off" for both, 0 is refused by some versions
            extra["top_k"] = params.top_k or -1
    if api == "chat" and chat_template_kwargs:
        extra["chat_template_kwargs"] = chat_template_kwargs
    return kw, extra


def transcript(messages: Sequence[Message]) -> str:
    """A conversation as plain text, for `render` when no tokenizer is at hand."""
    return "\n\n".join(f"{m.role}: {m.content}" for m in messages)


class OpenAISampler:
    """Requests to OpenAI-compatible servers, spread over `backend.endpoints` or the launched servers."""

    def __init__(
        self, model_path: str, cfg: Config, log: Log = Log(), servers: Launcher | None = None
    ) -> None:
        b = cfg.backend
        self.cfg, self.b, self.log, self.model_path = cfg, b, log, model_path
        if not b.endpoints and not b.launch:
            raise ValueError(
                "the openai backend needs at least one server: set backend.endpoints, "
                "e.g. backend.endpoints=[http://127.0.0.1:8000/v1], or backend.launch"
            )
        # servers started here (backend.launch): the run's, or this sampler's own when used alone
        self.own_servers = Launcher(cfg, log) if b.launch and servers is None else None
        self.servers = servers or self.own_servers
        self.adapter: tuple[str, str] | None = None  # (name, folder) of the round's adapter (backend.lora)
        if b.lora and adapter_base(model_path) is not None:
            self.adapter = (adapter_name(model_path), str(Path(model_path).resolve()))
        elif b.lora and model_path != cfg.model.path:
            raise ModelLoadError(
                f"backend.lora serves the base model {cfg.model.path} and rounds' adapters; "
                f"{model_path} is neither (a LoRA adapter folder has adapter_config.json)"
            )
        elif b.model_name and model_path != cfg.model.path and not b.launch:
            raise ModelLoadError(
                f"this stage samples {model_path}, but backend.model_name={b.model_name} pins the server's model; "
                f"unset backend.model_name and use a server that loads models by path (transformers serve "
                f"without a model argument), set backend.launch to have a server started for each model, or "
                f"evaluate only the base model"
            )
        served = cfg.model.path if b.lora else model_path  # the model the server was started with
        self.model_name = request_model(b.server, b.model_name or served, self.adapter and self.adapter[0])
        self._loaded: set[tuple[str, int]] = set()  # (endpoint, server start) holding the adapter
        self.api_key = "EMPTY"  # servers started without a key ignore it; the SDK insists on one
        if b.api_key_env:
            # only the variable named in the config: an OPENAI_API_KEY is never sent to another server by accident
            self.api_key = os.environ.get(b.api_key_env, "")
            if not self.api_key:
                raise ValueError(
                    f"backend.api_key_env={b.api_key_env}, but that environment variable is not set "
                    f"or empty; export {b.api_key_env}=<key>, or drop backend.api_key_env"
                )
        if b.n_in_request and b.server == "transformers":
            raise ValueError(
                "backend.n_in_request=true, but transformers serve answers one choice per request; "
                "set backend.n_in_request=false"
            )
        if b.api == "chat" and b.server == "openai" and cfg.model.chat_template_kwargs:
            raise ValueError(
                "model.chat_template_kwargs cannot be sent to backend.server=openai; use "
                "backend.api=completions (renders the prompt here) or drop them"
            )
        self.tokenizer = self._tokenizer(model_path)
        self.sent: dict[str, int] = {url: 0 for url in b.endpoints}  # requests per endpoint, retries included
        self.retries = 0
        self.restarts = 0  # launched servers started again after dying in a call

    def endpoints(self) -> list[str]:
        """The base URLs to send to: backend.endpoints, or the launched servers (started if need be); with
        backend.lora, each holds the round's adapter."""
        if self.servers is None:
            urls = [(url, 0) for url in self.b.endpoints]
        else:
            urls = [(s.url, s.starts) for s in self.servers.serve(self.model_path)]
        if self.adapter is not None:
            for url, start in urls:
                if (url, start) not in self._loaded:
                    load_adapter(url, self.b.server, *self.adapter, timeout=self.b.request_timeout_s)
                    self._loaded.add((url, start))
        return [url for url, _ in urls]

    def _tokenizer(self, model_path: str):
        if self.b.api == "completions":
            try:
                return load_tokenizer(model_path)
            except ModelLoadError as e:
                raise ModelLoadError(
                    f"backend.api=completions renders prompts here with the model's chat template: "
                    f"{e}; or use backend.api=chat"
                ) from None
        # chat: the server renders; a local tokenizer only makes `render` exact, so the hub is never asked
        if self.adapter is not None and not (Path(model_path) / "tokenizer_config.json").is_file():
            model_path = self.cfg.model.path  # an adapter folder without a tokenizer of its own
        return load_tokenizer(model_path) if Path(model_path).expanduser().is_dir() else None

    def render(self, messages: Sequence[Message]) -> str:
        """The text the model is conditioned on, rendered here with the model's chat template when
        its tokenizer is at hand (as the server renders it, if it uses the same template), else a transcript."""
        if self.tokenizer is None:
            return transcript(messages)
        return render(self.tokenizer, messages, self.cfg.model.chat_template_kwargs)

    def _prompt(self, messages: Sequence[Message]) -> Any:
        if self.b.api == "chat":
            return [{"role": m.role, "content": m.content} for m in messages]
        text = render(self.tokenizer, messages, self.cfg.model.chat_template_kwargs)
        bos = self.tokenizer.bos_token
        if (
            bos
            and text.startswith(bos)
            and self.tokenizer("x")["input_ids"][:1] == [self.tokenizer.bos_token_id]
        ):
            # the server tokenizes a prompt with special tokens, so it adds the BOS the template wrote itself
            text = text[len(bos) :]
        return text

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        params: SamplingConfig,
        n: int = 1,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
        keys: Sequence[str] | None = None,
    ) -> list[list[Completion]]:
        """`n` completions per conversation; `progress(k)` counts finished completions, like the hf backend's.
        Sample j of conversation i is seeded by (seed, keys[i], j); keys default to the positions."""
        if params.top_k and self.b.server == "openai":
            raise ValueError(
                f"sampling.top_k={params.top_k} cannot be sent to backend.server=openai (the API has no "
                f"top_k); set sampling.top_k=0, or backend.server to the server that answers"
            )
        keys = [str(i) for i in range(len(conversations))] if keys is None else [str(k) for k in keys]
        if self.b.n_in_request:
            requests = [
                _Request(i, tuple(range(n)), row_seed(seed, keys[i], 0)) for i in range(len(conversations))
            ]
        else:
            requests = [
                _Request(i, (j,), row_seed(seed, keys[i], j))
                for i in range(len(conversations))
                for j in range(n)
            ]
        prompts = [self._prompt(c) for c in conversations]
        out: list[list[Completion | None]] = [[None] * n for _ in conversations]
        while True:
            if self.servers is not None and self.servers.dead():
                # a launched server died: start it again (once a stage) and send what had not come back
                self.servers.revive()
                self.restarts += 1
                requests = [r for r in requests if any(out[r.conv][j] is None for j in r.samples)]
            try:
                _run(self._run_all(requests, prompts, params, out, progress, self.endpoints()))
                return out  # type: ignore[return-value]
            except (ServerDied, EndpointError):
                if self.servers is None or not self.servers.dead():
                    raise

    async def _run_all(
        self,
        requests: list[_Request],
        prompts: list[Any],
        params: SamplingConfig,
        out: list[list[Completion | None]],
        progress: Callable[[int], None] | None,
        urls: list[str],
    ) -> None:
        from openai import AsyncOpenAI

        loop = asyncio.get_running_loop()
        endpoints = [
            _Endpoint(
                url,
                AsyncOpenAI(
                    base_url=url, api_key=self.api_key, max_retries=0, timeout=self.b.request_timeout_s
                ),
            )
            for url in urls
        ]
        queue: asyncio.PriorityQueue = asyncio.PriorityQueue()
        for k, req in enumerate(requests):
            queue.put_nowait((0, k, req))
        done: asyncio.Future = loop.create_future()
        remaining = len(requests)
        freed = asyncio.Event()  # set when a slot frees up; only the dispatcher waits on it
        running: set[asyncio.Task] = set()

        def crashed(
            task: asyncio.Task,
        ) -> None:  # a bug here (or in `progress`) must end the call, not hang it
            running.discard(task)
            if not task.cancelled() and task.exception() is not None and not done.done():
                done.set_exception(task.exception())

        async def attempt(ep: _Endpoint, k: int, req: _Request, probe: bool) -> None:
            nonlocal remaining
            try:
                response = await self._call(ep.client, prompts[req.conv], params, len(req.samples), req.seed)
                completions = self._completions(response, req, ep.url)
                ep.strikes = 0
            except Exception as e:  # noqa: BLE001 - sorted into retry or fail below
                what, retry, retry_after = self._describe(e)
                if not retry or len(req.failures) >= self.b.max_retries:
                    if not done.done():
                        final = e if isinstance(e, EndpointError) else self._final_error(ep, req, what, retry)
                        done.set_exception(final)
                    return
                wait = min(retry_after or 0.0, MAX_BACKOFF_S)
                # requests in flight together fail together: only a failed probe is more evidence of a dead server
                ep.strikes = ep.strikes + 1 if probe else max(ep.strikes, 1)
                ep.cooling_until = max(
                    ep.cooling_until, loop.time() + max(self._backoff(ep.strikes - 1), wait)
                )
                delay = max(self._backoff(len(req.failures)), wait)
                if not ep.failures:
                    self.log.warn(
                        f"openai backend: {ep.url}: {what}; retrying (backend.max_retries="
                        f"{self.b.max_retries})"
                    )
                ep.failures.append(what)
                self.retries += 1
                later = _Request(req.conv, req.samples, req.seed, req.failures + (f"{ep.url}: {what}",))
                loop.call_later(delay, queue.put_nowait, (-len(later.failures), k, later))  # retries go first
                return
            finally:
                ep.in_flight -= 1
                freed.set()
            for j, c in zip(req.samples, completions):
                out[req.conv][j] = c
            if progress:
                progress(len(completions))
            remaining -= 1
            if remaining == 0 and not done.done():
                done.set_result(None)

        async def dispatch() -> None:
            while True:
                _, k, req = await queue.get()
                ep = await self._free_endpoint(endpoints, freed)
                ep.in_flight += 1
                ep.sent += 1
                task = loop.create_task(attempt(ep, k, req, probe=ep.strikes > 0))
                running.add(task)
                task.add_done_callback(crashed)

        async def watch() -> None:  # a launched server that exits ends the call (generate restarts it)
            while not done.done():
                dead = self.servers.dead() if self.servers is not None else []
                if dead:
                    done.set_exception(ServerDied(", ".join(s.url for s in dead)))
                    return
                await asyncio.sleep(0.2)

        dispatcher = loop.create_task(dispatch())
        dispatcher.add_done_callback(crashed)
        watcher = loop.create_task(watch())
        try:
            if requests:
                await done
        finally:
            dispatcher.cancel()
            watcher.cancel()
            for task in list(running):
                task.cancel()
            await asyncio.gather(dispatcher, watcher, *running, return_exceptions=True)
            for ep in endpoints:
                self.sent[ep.url] = self.sent.get(ep.url, 0) + ep.sent
                await ep.client.close()

    async def _free_endpoint(self, endpoints: list[_Endpoint], freed: asyncio.Event) -> _Endpoint:
        """A healthy endpoint with a free slot, the least busy first; else, once it has cooled down, one that
        failed lately, one request at a time (a probe: its success makes it healthy again)."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            free = [
                e
                for e in endpoints
                if e.cooling_until <= now and e.in_flight < (self.b.concurrency if e.strikes == 0 else 1)
            ]
            if free:
                return min(free, key=lambda e: (e.strikes > 0, e.in_flight, e.sent))
            freed.clear()
            cooling = [e.cooling_until - now for e in endpoints if e.cooling_until > now]
            try:
                await asyncio.wait_for(freed.wait(), min(cooling) if cooling else None)
            except asyncio.TimeoutError:
                pass

    async def _call(self, client: Any, prompt: Any, params: SamplingConfig, count: int, seed: int) -> Any:
        kw, extra = request_params(
            params,
            server=self.b.server,
            api=self.b.api,
            count=count,
            seed=seed,
            chat_template_kwargs=self.cfg.model.chat_template_kwargs,
        )
        if self.b.api == "chat":
            return await client.chat.completions.create(
                model=self.model_name, messages=prompt, extra_body=extra, **kw
            )
        return await client.completions.create(model=self.model_name, prompt=prompt, extra_body=extra, **kw)

    def _completions(self, response: Any, req: _Request, url: str) -> list[Completion]:
        choices = sorted(response.choices or [], key=lambda c: c.index)
        if len(choices) != len(req.samples):
            hint = " (it ignores `n`): set backend.n_in_request=false" if len(req.samples) > 1 else ""
            raise EndpointError(
                f"openai backend: {url} answered {len(choices)} choices for a request of "
                f"{len(req.samples)}{hint}"
            )
        usage = response.usage
        out = []
        for choice in choices:
            text = (choice.message.content if self.b.api == "chat" else choice.text) or ""
            finish = "length" if choice.finish_reason == "length" else "stop"
            out.append(
                Completion(
                    text=text,
                    n_tokens=self._n_tokens(choice, usage, len(choices), text, finish),
                    finish_reason=finish,
                    prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                )
            )
        return out

    def _n_tokens(self, choice: Any, usage: Any, n_choices: int, text: str, finish: str) -> int:
        """Generated tokens as the server counts them: from usage for one choice, else from the choice's logprobs,
        else counted here (+1 for the stop token)."""
        if n_choices == 1 and getattr(usage, "completion_tokens", None) is not None:
            return usage.completion_tokens
        logprobs = getattr(choice, "logprobs", None)
        tokens = (
            getattr(logprobs, "content", None) if self.b.api == "chat" else getattr(logprobs, "tokens", None)
        )
        if tokens is not None:
            return len(tokens)
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + (finish == "stop")
        return 0

    def _backoff(self, retry: int) -> float:
        """Exponential, with "equal jitter": somewhere in [b/2, b] for b = base * 2**retry, at most MAX_BACKOFF_S."""
        b = min(MAX_BACKOFF_S, self.b.retry_backoff_s * 2**retry)
        return b / 2 + random.uniform(0, b / 2)

    def _describe(self, e: Exception) -> tuple[str, bool, float | None]:
        """(what happened, whether a retry may help, the server's Retry-After in seconds)."""
        import openai

        if isinstance(e, EndpointError):
            return str(e), False, None
        if isinstance(e, openai.APITimeoutError):
            return f"no answer within backend.request_timeout_s={self.b.request_timeout_s:g} s", True, None
        if isinstance(e, openai.APIConnectionError):
            cause = e.__cause__ or e
            return f"connection failed ({type(cause).__name__}: {str(cause)[:200]})", True, None
        if isinstance(e, openai.APIStatusError):
            status = e.status_code
            body = e.response.text.strip()[:300] if e.response is not None else ""
            return (
                f"HTTP {status}: {body or e.message}",
                status in _RETRY_STATUS or status >= 500,
                _retry_after(e.response.headers.get("retry-after") if e.response is not None else None),
            )
        return f"{type(e).__name__}: {str(e)[:300]}", False, None

    def _final_error(self, ep: _Endpoint, req: _Request, what: str, retried: bool) -> EndpointError:
        samples = f"{req.samples[0]}-{req.samples[-1]}" if len(req.samples) > 1 else f"{req.samples[0]}"
        where = f"conversation {req.conv}, sample {samples}"
        if retried:
            history = "; ".join(req.failures + (f"{ep.url}: {what}",))
            return EndpointError(
                f"openai backend: {where} failed {len(req.failures) + 1} times, last at {ep.url}: {what} "
                f"(all: {history}). Completions finished in this call are not kept: the stage stops, and resuming "
                f"the run redoes it. Check the server, or raise backend.max_retries / backend.request_timeout_s"
            )
        return EndpointError(f"openai backend: {ep.url} refused {where}: {what}. {self._hint(what)}")

    def _hint(self, what: str) -> str:
        if what.startswith(("HTTP 401", "HTTP 403")):
            return "Put the key in an environment variable and set backend.api_key_env to its name"
        if what.startswith("HTTP 404"):
            return (
                f"Check that the endpoint ends in /v1 and serves model {self.model_name!r} (GET <endpoint>/models "
                f"lists what it serves; backend.model_name sets the name sent)"
            )
        if what.startswith(("HTTP 400", "HTTP 422")):
            return (
                f"Check the model name sent ({self.model_name!r}; backend.model_name sets it) and "
                f"backend.server={self.b.server}, which decides the fields sent (docs/openai-backend.md)"
            )
        return "See docs/openai-backend.md"

    def close(self) -> None:
        if self.adapter is not None:
            for url in {url for url, _ in self._loaded}:
                unload_adapter(url, self.b.server, self.adapter[0])
            self._loaded.clear()
        if self.own_servers is not None:
            self.own_servers.stop()
        self.tokenizer = None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: rare from model servers, so the backoff alone decides
        return None


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` to the end from synchronous code, also where an event loop already runs (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # none: the usual case (run outside the except block, or its errors would chain to this one)
    else:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, coro).result()
        return
    asyncio.run(coro)
