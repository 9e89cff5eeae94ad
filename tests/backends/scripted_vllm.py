"""A scripted stand-in for `vllm serve` with runtime LoRA updating, for tests (no vLLM here).

It answers what secondtry uses of vLLM's HTTP API, as vLLM's documentation describes it:
GET /health and /v1/models (the base model and every loaded adapter, with `parent`),
POST /v1/load_lora_adapter and /v1/unload_lora_adapter ({"lora_name", "lora_path"}; only with
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, as vLLM; an adapter above --max-lora-rank or a name
loaded twice is refused), and POST /v1/chat/completions naming the base model or an adapter
(another name: 404, "The model `x` does not exist.").

With a model it generates for real, one request at a time, with secondtry's hf code: an adapter
is merged into a copy of the base model in memory, and a request's `seed` keys the same per-row
sampling noise as the hf backend. With `--echo` it loads nothing and answers
"<last message>|model=<name>|seed=<seed>". `--record FILE` appends one JSON line per event;
`--ignore-sigterm` and `--die-after N` (exit after N answers) script failures.

    python scripted_vllm.py --model M --port P [--served-model-name N] [--enable-lora]
        [--max-lora-rank R] [--echo] [--record FILE] [--ignore-sigterm] [--die-after N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--served-model-name")
    p.add_argument("--enable-lora", action="store_true")
    p.add_argument("--max-lora-rank", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--echo", action="store_true")
    p.add_argument("--record")
    p.add_argument("--ignore-sigterm", action="store_true")
    p.add_argument("--die-after", type=int, default=0)
    args = p.parse_args()
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, lambda *a: print("SIGTERM ignored", flush=True))
    base_name = args.served_model_name or args.model
    runtime_lora = os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").lower() in ("1", "true")
    lock = threading.Lock()
    adapters: dict[str, str] = {}  # name -> path
    samplers: dict[str, object] = {}  # name -> the model to generate with (the base under base_name)
    answered = [0]

    def record(event: str, **fields) -> None:
        if args.record:
            with lock, open(args.record, "a", encoding="utf-8") as f:
                f.write(json.dumps({"event": event, "pid": os.getpid(), "port": args.port, **fields}) + "\n")

    def sampler_for(path: str):
        from secondtry.backends.hf import HFSampler
        from secondtry.config import build_config

        cfg = build_config(
            {
                "name": "scripted",
                "model": {"path": path},
                "train_task": {"name": "synthetic"},
                "eval_task": {"name": "synthetic"},
                "evaluation": {"select_on": "test"},
                "backend": {"name": "hf", "device": "cpu", "batch_size": 1},
            }
        )
        return HFSampler(path, cfg)

    if not args.echo:
        samplers[base_name] = sampler_for(args.model)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload) -> None:
            data = (json.dumps(payload) if not isinstance(payload, str) else payload).encode()
            self.send_response(status)
            kind = "text/plain" if isinstance(payload, str) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                return self._send(200, {})
            if self.path == "/v1/models":
                data = [{"id": base_name, "object": "model", "root": args.model, "parent": None}]
                data += [
                    {"id": n, "object": "model", "root": path, "parent": base_name}
                    for n, path in adapters.items()
                ]
                return self._send(200, {"object": "list", "data": data})
            self._send(404, {"detail": "Not Found"})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            if self.path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
                if not (args.enable_lora and runtime_lora):
                    return self._send(404, {"detail": "Not Found"})
                return self._load(body) if "unload" not in self.path else self._unload(body)
            if self.path == "/v1/chat/completions":
                return self._chat(body)
            self._send(404, {"detail": "Not Found"})

        def _load(self, body):
            name, path = body.get("lora_name"), body.get("lora_path")
            if name in adapters:
                return self._send(
                    400, {"error": {"message": f"The lora adapter '{name}' has already been loaded."}}
                )
            try:
                config = json.loads((Path(path) / "adapter_config.json").read_text())
            except (OSError, TypeError, ValueError) as e:
                return self._send(400, {"error": {"message": f"Loading lora {name} failed: {e}"}})
            if config["r"] > args.max_lora_rank:
                return self._send(
                    400,
                    {
                        "error": {
                            "message": f"LoRA rank {config['r']} is greater than "
                            f"max_lora_rank {args.max_lora_rank}."
                        }
                    },
                )
            with lock:
                if not args.echo:
                    samplers[name] = sampler_for(path)
                adapters[name] = path
            record("load", name=name, path=path, rank=config["r"])
            self._send(200, f"Success: LoRA adapter '{name}' added successfully.")

        def _unload(self, body):
            name = body.get("lora_name")
            if name not in adapters:
                return self._send(404, {"error": {"message": f"The lora adapter '{name}' cannot be found."}})
            with lock:
                adapters.pop(name)
                samplers.pop(name, None)
            record("unload", name=name)
            self._send(200, f"Success: LoRA adapter '{name}' removed successfully.")

        def _chat(self, body):
            name = body.get("model")
            if name != base_name and name not in adapters:
                return self._send(
                    404,
                    {
                        "error": {
                            "message": f"The model `{name}` does not exist.",
                            "type": "NotFoundError",
                            "code": 404,
                        }
                    },
                )
            record("request", model=name, seed=body.get("seed"))
            messages = body["messages"]
            if args.echo:
                text = f"{messages[-1]['content']}|model={name}|seed={body.get('seed')}"
                n_tokens, finish, prompt_tokens = 5, "stop", 3
            else:
                text, n_tokens, finish, prompt_tokens = generate(samplers[name], messages, body)
            with lock:
                answered[0] += 1
                last = args.die_after and answered[0] >= args.die_after
            choice = {"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}
            self._send(
                200,
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": name,
                    "choices": [choice],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": n_tokens,
                        "total_tokens": prompt_tokens + n_tokens,
                    },
                },
            )
            if last:
                self.wfile.flush()
                os._exit(3)

        def log_message(self, *a):
            print(self.address_string(), self.requestline, flush=True)

    def generate(sampler, messages, body):
        from secondtry.config import SamplingConfig
        from secondtry.types import Message

        params = SamplingConfig(
            temperature=body.get("temperature", 1.0),
            top_p=body.get("top_p", 1.0),
            top_k=max(0, body.get("top_k", -1)),
            max_new_tokens=body["max_tokens"],
        )
        text = sampler.render([Message(m["role"], m["content"]) for m in messages])
        ids = sampler.tokenizer(text, add_special_tokens=False)["input_ids"]
        with lock:  # one request at a time, as the hf backend's rows: its own seed keys its noise
            c = sampler._generate_batch([ids], params, [int(body["seed"])])[0]
        return c.text, c.n_tokens, c.finish_reason, c.prompt_tokens

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"scripted vLLM serving {base_name} on http://{args.host}:{args.port}", flush=True)
    server.serve_forever(0.05)


if __name__ == "__main__":
    sys.exit(main())
